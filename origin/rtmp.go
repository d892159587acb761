package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/amphi-live/amphi/segmenter"
)

const (
	// rtmpApp is the only RTMP application: rtmp://HOST:1935/live/NAME?key=KEY.
	rtmpApp = "live"
	// rtmpSetupTimeout bounds the handshake up to the publish command, and
	// then again the probe of the publisher's first media.
	rtmpSetupTimeout = 10 * time.Second
	// rtmpProbeLimit caps what a publisher may send while its tracks are
	// probed (gortmplib reads 2 s of media), video included.
	rtmpProbeLimit = 16 << 20
)

var errRTMPProbeLimit = errors.New("rtmp: no usable tracks in the first 16 MiB")

// serveRTMP accepts RTMP publishers on ln until ctx ends; then it closes ln
// and every connection, waits for their goroutines and returns nil.
func (s *Server) serveRTMP(ctx context.Context, ln net.Listener) error {
	var (
		mu     sync.Mutex
		conns  = make(map[net.Conn]struct{})
		closed bool
		wg     sync.WaitGroup
	)
	shutdown := func() {
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		ln.Close()
	}
	stop := context.AfterFunc(ctx, shutdown)
	defer func() {
		stop()
		shutdown()
		wg.Wait()
	}()
	s.log.Info("rtmp listening", "addr", ln.Addr().String())

	backoff := time.Duration(0)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("rtmp accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		mu.Lock()
		if closed {
			mu.Unlock()
			conn.Close()
			return nil
		}
		conns[conn] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			s.serveRTMPConn(conn)
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
		})
	}
}

// serveRTMPConn serves one RTMP connection to its end and closes it: it
// refuses anything but a publish of an authorized broadcast with AAC or Opus
// audio, then feeds that audio to the broadcast.
func (s *Server) serveRTMPConn(conn net.Conn) {
	defer conn.Close()
	log := s.log.With("proto", "rtmp", "remote", conn.RemoteAddr().String())
	defer func() {
		if p := recover(); p != nil {
			log.Error("rtmp connection panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()

	rw := &rtmpLimitConn{Conn: conn, left: rtmpProbeLimit}
	_ = conn.SetDeadline(time.Now().Add(rtmpSetupTimeout))
	sc := &gortmplib.ServerConn{RW: rw}
	if err := sc.Initialize(); err != nil {
		log.Debug("rtmp handshake failed", "err", err)
		return
	}
	if err := sc.AcceptConn(); err != nil {
		log.Debug("rtmp connect failed", "err", err)
		return
	}
	if !sc.Publish {
		log.Warn("rtmp play refused: playback is LL-HLS only")
		rtmpRefuse(sc, "NetStream.Play.Failed", "amphi plays over LL-HLS only: /live/NAME/index.m3u8")
		return
	}
	name, key, err := rtmpStreamKey(sc.URL)
	if err == nil {
		log = log.With("ingest", name)
		err = s.preauthorize(name, key)
	}
	if err != nil {
		log.Warn("rtmp publish refused", "reason", err)
		rtmpRefuse(sc, "NetStream.Publish.Rejected", err.Error())
		return
	}

	// Accept the publish, then read its first media to learn the tracks.
	r := &gortmplib.Reader{Conn: sc}
	if err := r.Initialize(); err != nil {
		log.Warn("rtmp publish failed before media arrived", "err", err)
		return
	}
	track, codec := rtmpAudio(r, log)
	if track == nil {
		log.Error("rtmp publish refused: the stream has no AAC or Opus audio track")
		rtmpRefuse(sc, "NetStream.Publish.Rejected", "no AAC or Opus audio track")
		return
	}
	in, err := s.attachIngest(name, key, codec, conn.RemoteAddr().String())
	if err != nil {
		log.Warn("rtmp publish refused", "reason", err)
		rtmpRefuse(sc, "NetStream.Publish.Rejected", err.Error())
		return
	}
	defer in.Detach()
	rw.left = -1
	log.Info("rtmp ingest started", "codec", codec.String())

	var werr error // the first write error ends the ingest
	switch codec.(type) {
	case *segmenter.AAC:
		r.OnDataMPEG4Audio(track, func(pts time.Duration, au []byte) {
			if werr == nil {
				werr = in.WriteAAC(pts, [][]byte{au})
			}
		})
	case *segmenter.Opus:
		r.OnDataOpus(track, func(pts time.Duration, packet []byte) {
			if werr == nil {
				werr = in.WriteOpus(pts, [][]byte{packet})
			}
		})
	}
	timeout := time.Duration(s.cfg.Ingest.ReadTimeout)
	for {
		_ = conn.SetDeadline(time.Now().Add(timeout))
		err := r.Read()
		if err == nil {
			err = werr
		}
		var ne net.Error
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			log.Info("rtmp ingest ended by publisher")
		case errors.Is(err, net.ErrClosed):
			log.Info("rtmp ingest closed: origin shutting down")
		case errors.Is(err, segmenter.ErrEnded):
			log.Info("rtmp ingest cut off: the broadcast was stopped")
		case errors.As(err, &ne) && ne.Timeout():
			log.Warn("rtmp ingest dropped: publisher sent nothing", "timeout", timeout)
		default:
			log.Warn("rtmp ingest failed", "err", err)
		}
		return
	}
}

// rtmpStreamKey takes the broadcast name and key from a publish URL, which
// gortmplib joins from the connect's tcUrl and the publish's stream name:
// rtmp://HOST/live/NAME?key=KEY from ffmpeg, or OBS's server
// rtmp://HOST/live with stream key NAME?key=KEY. The key may be empty; it is
// for attachIngest to judge.
func rtmpStreamKey(u *url.URL) (name, key string, err error) {
	if u == nil {
		return "", "", errors.New("no stream URL")
	}
	app, name, ok := strings.Cut(strings.TrimPrefix(path.Clean(u.Path), "/"), "/")
	if !ok || app != rtmpApp || name == "" {
		return "", "", fmt.Errorf("publish to rtmp://HOST/%s/NAME?key=KEY, not %q", rtmpApp, u.Path)
	}
	return name, u.Query().Get("key"), nil
}

// rtmpAudio picks the first AAC or Opus track of r and its segmenter codec.
// Every other track (video, further audio) is logged and read into nothing.
func rtmpAudio(r *gortmplib.Reader, log *slog.Logger) (*gortmplib.Track, segmenter.Codec) {
	var audio *gortmplib.Track
	var codec segmenter.Codec
	var ignored []string
	for _, t := range r.Tracks() {
		if audio == nil {
			switch c := t.Codec.(type) {
			case *codecs.MPEG4Audio:
				if c.Config != nil {
					cfg := *c.Config
					audio, codec = t, &segmenter.AAC{Config: &cfg}
					continue
				}
			case *codecs.Opus:
				ch := 2
				if c.IDHeader != nil && c.IDHeader.ChannelCount > 0 {
					ch = int(c.IDHeader.ChannelCount)
				}
				audio, codec = t, &segmenter.Opus{Channels: ch}
				continue
			}
		}
		// gortmplib calls a nil callback for a track without one.
		if t.Codec.IsVideo() {
			r.OnDataVP9(t, func(time.Duration, []byte) {})
		} else {
			r.OnDataOpus(t, func(time.Duration, []byte) {})
		}
		ignored = append(ignored, strings.TrimPrefix(fmt.Sprintf("%T", t.Codec), "*codecs."))
	}
	if len(ignored) > 0 {
		log.Warn("ignoring tracks amphi does not carry (video, extra audio)", "tracks", strings.Join(ignored, ", "))
	}
	return audio, codec
}

// rtmpRefuse tells the client why its play or publish is refused, in the
// onStatus error that ffmpeg prints and OBS logs. The connection is closed
// right after, so a failed write needs no handling.
func rtmpRefuse(sc *gortmplib.ServerConn, code, reason string) {
	_ = sc.Write(&message.CommandAMF0{
		ChunkStreamID:   5,
		MessageStreamID: 0x1000000,
		Name:            "onStatus",
		Arguments: []any{nil, amf0.Object{
			{Key: "level", Value: "error"},
			{Key: "code", Value: code},
			{Key: "description", Value: reason},
		}},
	})
}

// rtmpLimitConn fails reads once left bytes have been read; left < 0 is
// unlimited. It bounds what an unattached publisher can make gortmplib
// buffer while its tracks are probed.
type rtmpLimitConn struct {
	net.Conn
	left int64
}

func (c *rtmpLimitConn) Read(p []byte) (int, error) {
	if c.left < 0 {
		return c.Conn.Read(p)
	}
	if c.left == 0 {
		return 0, errRTMPProbeLimit
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}
