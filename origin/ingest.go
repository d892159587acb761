package origin

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/amphi-live/amphi/segmenter"
)

const (
	// probeLimit bounds how much of an ingest is read looking for its
	// program and audio configuration before it is refused as not MPEG-TS.
	probeLimit = 4 << 20
	// maxDecodeErrors ends an ingest whose stream keeps failing to decode.
	maxDecodeErrors = 50
)

// handleIngest takes MPEG-TS pushed as a chunked PUT or POST to
// /ingest/NAME, for example from
//
//	ffmpeg -re -i IN -c:a aac -b:a 64k -f mpegts -method PUT http://HOST:8080/ingest/NAME
func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		w.Header().Set("Allow", "PUT, POST")
		http.Error(w, "405 ingest takes PUT or POST of MPEG-TS", http.StatusMethodNotAllowed)
		return
	}
	name := r.PathValue("name")
	log := s.log.With("ingest", name, "remote", r.RemoteAddr)

	rc := http.NewResponseController(w)
	body := &ingestReader{r: r.Body, rc: rc, timeout: time.Duration(s.cfg.Ingest.ReadTimeout), limit: probeLimit}

	status, err := s.ingest(name, ingestKey(r), r.RemoteAddr, body, log)
	if err != nil {
		log.Warn("ingest refused or failed", "status", status, "err", err)
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("%d %v", status, err), status)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ingest demuxes one MPEG-TS publisher into a new session of broadcast name.
// It returns the HTTP status to answer with and the error behind it.
func (s *Server) ingest(name, key, remote string, body *ingestReader, log *slog.Logger) (int, error) {
	// Refuse what can be refused before reading anything.
	if err := s.preauthorize(name, key); err != nil {
		return publishStatus(err), err
	}
	tr := &mpegts.Reader{R: body}
	if err := tr.Initialize(); err != nil {
		if body.err != nil && !errors.Is(body.err, io.EOF) {
			return http.StatusRequestTimeout, fmt.Errorf("reading ingest: %w", body.err)
		}
		return http.StatusBadRequest, fmt.Errorf("not an MPEG-TS stream with a program: %w", err)
	}
	body.limit = 0

	var audio *mpegts.Track
	var codec segmenter.Codec
	var ignored []string
	for _, t := range tr.Tracks() {
		switch c := t.Codec.(type) {
		case *tscodecs.MPEG4Audio:
			if audio == nil {
				cfg := c.Config
				audio, codec = t, &segmenter.AAC{Config: &cfg}
				continue
			}
		case *tscodecs.Opus:
			if audio == nil {
				ch := c.ChannelCount //nolint:staticcheck // Desc is unset for some muxers
				if c.Desc != nil && c.Desc.ExplicitChannelCount > 0 {
					ch = c.Desc.ExplicitChannelCount
				}
				audio, codec = t, &segmenter.Opus{Channels: ch}
				continue
			}
		}
		ignored = append(ignored, fmt.Sprintf("%T", t.Codec))
	}
	if len(ignored) > 0 {
		log.Warn("ignoring tracks amphi does not carry (video, data, extra audio)", "tracks", strings.Join(ignored, ", "))
	}
	if audio == nil {
		return http.StatusUnsupportedMediaType, errors.New("the stream has no AAC or Opus audio track")
	}

	sess, err := s.attachIngest(name, key, codec, remote)
	if err != nil {
		return publishStatus(err), err
	}
	defer sess.Detach()
	log.Info("ingest started", "codec", codec.String())

	decodeErrors := 0
	tr.OnDecodeError(func(error) { decodeErrors++ })
	switch codec.(type) {
	case *segmenter.AAC:
		tr.OnDataMPEG4Audio(audio, func(pts int64, aus [][]byte) error {
			return sess.WriteAAC(ticksToDuration(pts), aus)
		})
	case *segmenter.Opus:
		tr.OnDataOpus(audio, func(pts int64, packets [][]byte) error {
			return sess.WriteOpus(ticksToDuration(pts), packets)
		})
	}

	for {
		err := tr.Read()
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			if body.err != nil && !errors.Is(body.err, io.EOF) {
				return http.StatusRequestTimeout, fmt.Errorf("reading ingest: %w", body.err)
			}
			log.Info("ingest ended by publisher", "bytes", body.n)
			return http.StatusNoContent, nil
		case err != nil:
			if body.err != nil && !errors.Is(body.err, io.EOF) {
				return http.StatusRequestTimeout, fmt.Errorf("reading ingest: %w", body.err)
			}
			return http.StatusBadRequest, fmt.Errorf("bad MPEG-TS: %w", err)
		}
		if decodeErrors > maxDecodeErrors {
			return http.StatusBadRequest, fmt.Errorf("bad MPEG-TS: more than %d decode errors", maxDecodeErrors)
		}
	}
}

// publishStatus maps an authorization or Publish error to its HTTP status.
func publishStatus(err error) int {
	switch {
	case errors.Is(err, ErrAlreadyLive), errors.Is(err, ErrEnded):
		return http.StatusConflict
	case errors.Is(err, ErrTooManyStream):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrBadKey):
		return http.StatusForbidden
	case errors.Is(err, ErrUnknownBroadcast):
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

// ingestKey takes the stream key from ?key= or an Authorization: Bearer header.
func ingestKey(r *http.Request) string {
	if k := r.URL.Query().Get("key"); k != "" {
		return k
	}
	if k, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	return ""
}

// ticksToDuration converts a 90 kHz MPEG-TS timestamp.
func ticksToDuration(ticks int64) time.Duration {
	return time.Duration(ticks) * time.Second / 90000
}

// ingestReader reads a publisher's body with a read deadline renewed before
// every read, and caps how much is read while probing.
type ingestReader struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
	limit   int64 // 0 = unlimited
	n       int64
	err     error
}

var errProbeLimit = errors.New("no MPEG-TS program found in the first 4 MiB")

func (ir *ingestReader) Read(p []byte) (int, error) {
	if ir.limit > 0 && ir.n >= ir.limit {
		return 0, errProbeLimit
	}
	_ = ir.rc.SetReadDeadline(time.Now().Add(ir.timeout))
	n, err := ir.r.Read(p)
	ir.n += int64(n)
	if err != nil {
		ir.err = err
	}
	return n, err
}
