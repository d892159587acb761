// Package origin is amphi's origin: it takes audio in (HTTP ingest, the
// built-in demo source), runs one segmenter per broadcast and serves the
// LL-HLS output through the shared serving core, internal/llhls.
package origin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/amphi-live/amphi/internal/h1"
	"github.com/amphi-live/amphi/internal/httpserve"
	"github.com/amphi-live/amphi/internal/llhls"
	"github.com/amphi-live/amphi/internal/player"
	"github.com/amphi-live/amphi/segmenter"
)

// Errors returned by Server.Publish.
var (
	ErrInvalidName   = errors.New("invalid broadcast name: use 1-64 of a-z, 0-9 and -")
	ErrAlreadyLive   = errors.New("broadcast is already live")
	ErrTooManyStream = errors.New("too many live broadcasts")
)

// endedRetention is how long an ended broadcast keeps answering with its
// final playlist before it is forgotten.
const endedRetention = 10 * time.Minute

// Server is the origin. Create it with New, serve with Run or Handler.
type Server struct {
	cfg  Config
	seg  segmenter.Config
	log  *slog.Logger
	now  func() time.Time
	core *llhls.Handler
	mux  *http.ServeMux

	store *store

	// playing is broadcasts as the serving core reads it, without mu: a
	// copy replaced under mu whenever broadcasts changes. mu is held
	// across the store's writes (an fsync), and playback runs on h1's
	// event loops, which must not wait for one.
	playing atomic.Pointer[map[string]*broadcast]

	mu         sync.Mutex
	broadcasts map[string]*broadcast // playback sessions, by name
	sessions   map[string]*Session   // running segmenters, by name
	entries    map[string]*entry     // managed broadcasts (admin API), by name
}

// New validates cfg and builds a Server. logger defaults to slog.Default().
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sc, err := cfg.SegmenterSettings()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{
		cfg:        cfg,
		seg:        sc,
		log:        logger.With("component", "origin"),
		now:        time.Now,
		mux:        http.NewServeMux(),
		broadcasts: make(map[string]*broadcast),
		sessions:   make(map[string]*Session),
		entries:    make(map[string]*entry),
	}
	s.publishPlayingLocked()
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if s.store, err = openStore(cfg.Data); err != nil {
		return nil, err
	}
	if err := s.loadEntries(); err != nil {
		s.store.close()
		return nil, err
	}
	s.core, err = llhls.NewHandler(llhls.Config{
		Catalog:               catalog{s},
		DefaultTargetDuration: sc.SegmentDuration.Round(time.Second),
		Page:                  &player.Page{HLSJSURL: cfg.Player.HLSJSURL},
		Logger:                s.log,
	})
	if err != nil {
		return nil, err
	}
	s.core.Register(s.mux)
	s.mux.HandleFunc("/ingest/{name}", s.handleIngest)
	s.registerAPI(s.mux)
	s.mux.HandleFunc("GET /healthz", httpserve.Health)
	return s, nil
}

// Handler returns the HTTP handler for playback and ingest.
func (s *Server) Handler() http.Handler { return s.mux }

// catalog adapts Server to llhls.Catalog.
type catalog struct{ s *Server }

func (c catalog) Stream(_ context.Context, name string) llhls.Stream {
	if b, ok := (*c.s.playing.Load())[name]; ok {
		return b
	}
	return nil
}

// Session is one publisher's feed into a broadcast. Write from one goroutine;
// End when the publisher goes away.
type Session struct {
	s     *Server
	b     *broadcast
	seg   *segmenter.Segmenter
	once  sync.Once
	start time.Time

	mu sync.Mutex // serialises the segmenter: End may come from shutdown
}

// Publish starts a new live session of broadcast name with codec, for a
// publisher inside the process (the demo source) or an open ingest. A name
// whose previous session has ended starts afresh with new URIs.
func (s *Server) Publish(name string, codec segmenter.Codec) (*Session, error) {
	if !llhls.ValidName(name) {
		return nil, ErrInvalidName
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, live := s.sessions[name]; live {
		return nil, ErrAlreadyLive
	}
	if e, managed := s.entries[name]; managed && e.state != StateEnded {
		return nil, ErrAlreadyLive
	}
	if len(s.sessions) >= s.cfg.Ingest.MaxStreams {
		return nil, ErrTooManyStream
	}
	return s.startSessionLocked(name, codec)
}

// startSessionLocked starts a segmenter session for name and makes it the
// one listeners get. s.mu is held.
func (s *Server) startSessionLocked(name string, codec segmenter.Codec) (*Session, error) {
	b := newBroadcast(name, codec, s.now)
	seg, err := segmenter.New(s.seg, codec, b, s.now)
	if err != nil {
		return nil, err
	}
	sess := &Session{s: s, b: b, seg: seg, start: s.now()}
	s.broadcasts[name] = b
	s.publishPlayingLocked()
	s.sessions[name] = sess
	s.log.Info("broadcast live", "name", name, "codec", codec.String(),
		"part_target", seg.PartTarget(), "target_duration", seg.TargetDuration())
	return sess, nil
}

// Segmenter exposes the session's segmenter settings (read-only use).
func (ss *Session) Segmenter() *segmenter.Segmenter { return ss.seg }

// WriteAAC writes AAC access units.
func (ss *Session) WriteAAC(pts time.Duration, aus [][]byte) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.seg.WriteAAC(pts, aus)
}

// WriteOpus writes Opus packets.
func (ss *Session) WriteOpus(pts time.Duration, packets [][]byte) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.seg.WriteOpus(pts, packets)
}

// discontinuity marks a publisher change: the next segment follows a break.
func (ss *Session) discontinuity() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.seg.Discontinuity()
}

// End ends the broadcast: the playlist gets EXT-X-ENDLIST and every held
// request is released with it.
func (ss *Session) End() {
	ss.once.Do(func() {
		ss.mu.Lock()
		ss.seg.End()
		ss.mu.Unlock()
		ss.s.mu.Lock()
		if ss.s.sessions[ss.b.name] == ss {
			delete(ss.s.sessions, ss.b.name)
		}
		ss.s.mu.Unlock()
		ss.s.log.Info("broadcast ended", "name", ss.b.name, "duration", ss.s.now().Sub(ss.start).Round(time.Second))
	})
}

// Run serves on cfg.Listen until ctx ends, then shuts down gracefully:
// live sessions end, which releases every held request with ENDLIST.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing HTTP listener; RTMP, when rtmp.listen is set,
// listens on its own address.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var rl net.Listener
	if s.cfg.RTMP.Listen != "" {
		var err error
		if rl, err = net.Listen("tcp", s.cfg.RTMP.Listen); err != nil {
			ln.Close()
			s.store.close()
			return fmt.Errorf("rtmp.listen: %w", err)
		}
	}
	return s.ServeListeners(ctx, ln, rl)
}

// ServeListeners serves HTTP on httpLn and RTMP on rtmpLn (nil: no RTMP)
// until ctx ends, then shuts down gracefully: live sessions end, which
// releases every held request with ENDLIST.
func (s *Server) ServeListeners(ctx context.Context, httpLn, rtmpLn net.Listener) error {
	defer s.store.close()
	// The same HTTP/1.1 server as the edge (package h1), so both tiers
	// answer alike and the origin costs as little per request. An ingest
	// is one chunked body for the whole broadcast: no body limit, and its
	// reads set their own deadlines (ingestReader).
	srv := &h1.Server{
		Handler:        s.mux,
		MaxHeaderBytes: 16 << 10,
		MaxBodyBytes:   math.MaxInt64,
		Goroutines:     s.cfg.Connections == httpserve.ConnGoroutines,
		OnLoop:         httpserve.OnLoop,
		Logger:         s.log,
	}
	s.log.Info("origin listening", "http", httpLn.Addr().String(), "preset", s.cfg.Segmenter.Preset)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserve.Serve(gctx, srv, httpLn, s.endAll) })
	if rtmpLn != nil {
		g.Go(func() error { return s.serveRTMP(gctx, rtmpLn) })
	}
	g.Go(func() error {
		s.reap(gctx)
		return nil
	})
	return g.Wait()
}

func (s *Server) endAll() {
	s.mu.Lock()
	sessions := make([]*Session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.End()
	}
}

// publishPlayingLocked makes playing a copy of broadcasts. s.mu is held.
func (s *Server) publishPlayingLocked() {
	m := maps.Clone(s.broadcasts)
	s.playing.Store(&m)
}

// reap forgets broadcasts that ended more than endedRetention ago.
func (s *Server) reap(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := s.now().Add(-endedRetention).UnixNano()
		s.mu.Lock()
		reaped := false
		for name, b := range s.broadcasts {
			if b.ended.Load() && b.endedAt.Load() < cutoff {
				delete(s.broadcasts, name)
				reaped = true
				if e, ok := s.entries[name]; ok && e.sess != nil && e.sess.b == b {
					e.sess = nil
				}
			}
		}
		if reaped {
			s.publishPlayingLocked()
		}
		s.mu.Unlock()
	}
}
