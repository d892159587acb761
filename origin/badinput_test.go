package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/segmenter"
)

// These tests feed the origin wrong input, at playback and at ingest, and
// check that it refuses it with the documented status while a live stream on
// the same origin carries on.

// Valid ~1 s MPEG-TS files with one audio track (see testdata/README.md).
const (
	badSineTS     = "testdata/sine.ts"
	badSineOpusTS = "testdata/sine-opus.ts"
)

// badLive publishes a synthetic AAC stream on srv, paced in real time, until
// the test ends (at most a minute). The segmenter does not decode AAC, so the
// access units are arbitrary non-empty bytes.
func badLive(t *testing.T, srv *Server, name string) {
	t.Helper()
	sess, err := srv.Publish(name, &segmenter.AAC{Config: &mpeg4audio.AudioSpecificConfig{
		Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 1, ChannelConfig: 1,
	}})
	require.NoError(t, err)

	const frame = time.Second * 1024 / 48000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer sess.End()
		tick := time.NewTicker(frame)
		defer tick.Stop()
		start := time.Now()
		var written int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// Catch up on ticks the ticker dropped, so the stream keeps
			// wall-clock pace.
			due := int64(time.Since(start)/frame) + 1
			for ; written < due; written++ {
				au := []byte{0x21, byte(written), byte(written >> 8), 0x80}
				if err := sess.WriteAAC(time.Duration(written)*frame, [][]byte{au}); err != nil {
					if !errors.Is(err, segmenter.ErrEnded) {
						t.Errorf("writing AAC: %v", err)
					}
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// badDo makes one request within limit and returns the status, body and how
// long the answer took.
func badDo(t *testing.T, method, url string, body io.Reader, limit time.Duration) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	require.NoError(t, err)
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err, "%s %s", method, url)
	return res.StatusCode, string(b), time.Since(start)
}

// badPosition returns the live playlist of a stream; the first request holds
// until the stream has its first segment.
func badPosition(t *testing.T, mediaURL string) ffMedia {
	t.Helper()
	code, body, _ := badDo(t, http.MethodGet, mediaURL, nil, 5*time.Second)
	require.Equal(t, http.StatusOK, code, "%s", body)
	m := ffParseMedia(t, []byte(body))
	require.False(t, m.ended, "%s", body)
	return m
}

// badStillLive checks that the stream answers its playlist and that a
// blocking request for the next part is answered with a playlist that has it.
func badStillLive(t *testing.T, mediaURL string) ffMedia {
	t.Helper()
	before := badPosition(t, mediaURL)
	url := fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", mediaURL, before.nextMSN(), before.parts)
	code, body, took := badDo(t, http.MethodGet, url, nil, 5*time.Second)
	require.Equal(t, http.StatusOK, code, "%s", body)
	after := ffParseMedia(t, []byte(body))
	require.True(t, after.nextMSN() > before.nextMSN() || after.parts > before.parts,
		"next part request answered without the next part (took %v):\n%s", took, body)
	return after
}

func TestBadPlaybackUnknown(t *testing.T) {
	t.Parallel()
	srv, base := startTestOrigin(t, "low")
	badLive(t, srv, "known")
	badPosition(t, base+"/live/known/audio.m3u8")
	cases := []struct{ name, path string }{
		{"multivariant", "/live/nope/index.m3u8"},
		{"media playlist", "/live/nope/audio.m3u8"},
		{"blocking media playlist", "/live/nope/audio.m3u8?_HLS_msn=3&_HLS_part=1"},
		{"media object", "/live/nope/0a1b2c3d-0.m4s"},
		{"init section", "/live/nope/0a1b2c3d-init.mp4"},
		{"uppercase name", "/live/UPPER/index.m3u8"},
		{"uppercase name of a live stream", "/live/KNOWN/index.m3u8"},
		{"name too long", "/live/" + strings.Repeat("a", 65) + "/index.m3u8"},
		{"other playlist of a live stream", "/live/known/video.m3u8"},
		{"unknown object of a live stream", "/live/known/0a1b2c3d-0.m4s"},
		{"dot file of a live stream", "/live/known/.audio.m3u8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body, took := badDo(t, http.MethodGet, base+tc.path, nil, 5*time.Second)
			require.Equal(t, http.StatusNotFound, code, "%s", body)
			require.Less(t, took, time.Second, "a 404 must not be held")
		})
	}
}

func TestBadDirectives(t *testing.T) {
	t.Parallel()
	srv, base := startTestOrigin(t, "low")
	const name = "directives"
	badLive(t, srv, name)
	mediaURL := base + "/live/" + name + "/audio.m3u8"
	badPosition(t, mediaURL)

	cases := []struct {
		name  string
		query func(m ffMedia) string
		want  string // in the error body
	}{
		{"malformed msn", func(ffMedia) string { return "_HLS_msn=abc" }, "_HLS_msn"},
		{"negative msn", func(ffMedia) string { return "_HLS_msn=-1" }, "_HLS_msn"},
		{"part without msn", func(ffMedia) string { return "_HLS_part=1" }, "_HLS_part"},
		{"malformed part", func(m ffMedia) string { return fmt.Sprintf("_HLS_msn=%d&_HLS_part=x", m.nextMSN()) }, "_HLS_part"},
		{"repeated msn", func(m ffMedia) string { return fmt.Sprintf("_HLS_msn=%d&_HLS_msn=%d", m.nextMSN(), m.nextMSN()) }, "more than once"},
		{"msn far ahead", func(m ffMedia) string { return fmt.Sprintf("_HLS_msn=%d", m.lastMSN()+10) }, "too far ahead"},
		{"msn 3 ahead", func(m ffMedia) string { return fmt.Sprintf("_HLS_msn=%d", m.lastMSN()+3) }, "too far ahead"},
		{"huge msn", func(ffMedia) string { return "_HLS_msn=99999999999999999999" }, "_HLS_msn"},
		{"part far ahead", func(m ffMedia) string { return fmt.Sprintf("_HLS_msn=%d&_HLS_part=1000", m.nextMSN()) }, "too far ahead"},
		{"skip NO", func(ffMedia) string { return "_HLS_skip=NO" }, "_HLS_skip"},
		{"skip lowercase", func(ffMedia) string { return "_HLS_skip=yes" }, "_HLS_skip"},
		{"bad escape", func(ffMedia) string { return "_HLS_msn=%zz" }, "escape"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := badPosition(t, mediaURL)
			q := tc.query(m)
			code, body, took := badDo(t, http.MethodGet, mediaURL+"?"+q, nil, 5*time.Second)
			require.Equal(t, http.StatusBadRequest, code, "?%s: %s", q, body)
			require.Contains(t, body, tc.want, "?%s", q)
			require.Less(t, took, time.Second, "?%s: a 400 must come at once", q)
			badStillLive(t, mediaURL)
		})
	}
}

func TestBadIngest(t *testing.T) {
	t.Parallel()
	srv, base := startTestOrigin(t, "low")
	const live = "onair"
	badLive(t, srv, live)
	mediaURL := base + "/live/" + live + "/audio.m3u8"
	start := badPosition(t, mediaURL)

	sine, err := os.ReadFile(badSineTS)
	require.NoError(t, err)
	junk := make([]byte, probeLimit+(1<<20))
	rng := rand.New(rand.NewChaCha8([32]byte{'a', 'm', 'p', 'h', 'i'}))
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}

	cases := []struct {
		name   string
		method string
		path   string
		body   func(t *testing.T) []byte
		code   int
		want   string // in the error body
	}{
		{"random bytes", http.MethodPut, "/ingest/junk", func(*testing.T) []byte { return junk[:1<<20] }, http.StatusBadRequest, "MPEG-TS"},
		{"random bytes past the probe limit", http.MethodPut, "/ingest/junk", func(*testing.T) []byte { return junk }, http.StatusBadRequest, "MPEG-TS"},
		{"random bytes by POST", http.MethodPost, "/ingest/junk", func(*testing.T) []byte { return junk[:64<<10] }, http.StatusBadRequest, "MPEG-TS"},
		{"empty body", http.MethodPut, "/ingest/empty", func(*testing.T) []byte { return nil }, http.StatusBadRequest, "MPEG-TS"},
		{"truncated before any audio", http.MethodPut, "/ingest/short", func(*testing.T) []byte { return sine[:188*2] }, http.StatusBadRequest, "MPEG-TS"},
		{"video only", http.MethodPut, "/ingest/video", badVideoTS, http.StatusUnsupportedMediaType, "no AAC or Opus"},
		{"uppercase name", http.MethodPut, "/ingest/Upper", func(*testing.T) []byte { return sine }, http.StatusBadRequest, "name"},
		{"name too long", http.MethodPut, "/ingest/" + strings.Repeat("a", 65), func(*testing.T) []byte { return sine }, http.StatusBadRequest, "name"},
		{"GET", http.MethodGet, "/ingest/x", nil, http.StatusMethodNotAllowed, "PUT or POST"},
		{"DELETE", http.MethodDelete, "/ingest/" + live, nil, http.StatusMethodNotAllowed, "PUT or POST"},
		{"second publisher", http.MethodPut, "/ingest/" + live, func(*testing.T) []byte { return sine }, http.StatusConflict, "already live"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != nil {
				// A reader without a known length goes out chunked, as
				// ffmpeg sends it.
				body = io.MultiReader(bytes.NewReader(tc.body(t)))
			}
			code, msg, _ := badDo(t, tc.method, base+tc.path, body, 10*time.Second)
			badStillLive(t, mediaURL)
			require.Equal(t, tc.code, code, "%s", msg)
			require.Contains(t, msg, tc.want)
		})
	}

	end := badStillLive(t, mediaURL)
	require.Greater(t, end.nextMSN(), start.nextMSN(), "the live stream did not advance")
	code, _, _ := badDo(t, http.MethodGet, base+"/live/junk/index.m3u8", nil, 5*time.Second)
	require.Equal(t, http.StatusNotFound, code, "a refused ingest must not create a stream")
}

// badVideoTS makes a valid MPEG-TS with one H.264 track and no audio.
func badVideoTS(t *testing.T) []byte {
	t.Helper()
	ffNeed(t)
	out := filepath.Join(t.TempDir(), "video.ts")
	_, errOut, err := ffRun(t, 20*time.Second, "ffmpeg", "-nostdin", "-v", "error",
		"-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-t", "2", "-c:v", "libx264", "-f", "mpegts", out)
	require.NoError(t, err, "%s", errOut)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	return b
}

// FuzzIngest feeds arbitrary bytes to the HTTP ingest. Whatever comes in, the
// origin must not panic, must not hang and must answer 2xx or 4xx. Each valid
// seed runs a whole session through the segmenter, which makes minimizing new
// inputs slow; fuzz with minimization off:
//
//	go test -run '^$' -fuzz '^FuzzIngest$' -fuzztime 30s -fuzzminimizetime 0 ./origin
func FuzzIngest(f *testing.F) {
	cfg := DefaultConfig()
	cfg.Ingest.Open = true // the fuzzer publishes without keys
	cfg.RTMP.Listen = ""
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = f.TempDir()
	cfg.Segmenter.Preset = "low"
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(f, err)
	h := srv.Handler()
	ingest := func(data []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPut, "/ingest/fuzz", bytes.NewReader(data))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	for _, file := range []string{badSineTS, badSineOpusTS} {
		ts, err := os.ReadFile(file)
		require.NoError(f, err)
		// The valid seeds must make it through a whole session.
		rec := ingest(ts)
		require.Equal(f, http.StatusNoContent, rec.Code, "%s: %s", file, rec.Body)
		f.Add(ts)
		f.Add(ts[:len(ts)/2])
		f.Add(ts[:188*3])
		flipped := bytes.Clone(ts)
		for i := 4; i < len(flipped); i += 97 {
			flipped[i] ^= 0x5a
		}
		f.Add(flipped)
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0x47}, 188*4))
	junk := make([]byte, 4096)
	rng := rand.New(rand.NewChaCha8([32]byte{'f', 'u', 'z', 'z'}))
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	f.Add(junk)

	f.Fuzz(func(t *testing.T, data []byte) {
		var rec *httptest.ResponseRecorder
		done := make(chan struct{})
		go func() {
			defer close(done)
			rec = ingest(data)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			require.FailNow(t, "ingest hung", "%d bytes (%x) not done within 5s:\n%s", len(data), data, buf)
		}
		ok := rec.Code >= 200 && rec.Code < 300 || rec.Code >= 400 && rec.Code < 500
		require.True(t, ok, "ingest of %d bytes answered %d: %s", len(data), rec.Code, rec.Body)
	})
}
