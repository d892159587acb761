// Package edge is amphi's CDN edge cache: it mounts the same LL-HLS serving
// core as the origin (internal/llhls) over an HTTP upstream, so that many
// listeners cost the upstream one fill per playlist update and per object.
//
// The layers: upstream.go talks to the configured upstreams with failover;
// cache.go is a byte-bounded LRU of immutable objects; stream.go collapses
// concurrent misses onto one detached fetch; tracker.go follows each live
// media playlist with blocking reloads and wakes held listeners.
package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/amphi-live/amphi/internal/evloop"
	"github.com/amphi-live/amphi/internal/h1"
	"github.com/amphi-live/amphi/internal/httpserve"
	"github.com/amphi-live/amphi/internal/llhls"
	"github.com/amphi-live/amphi/internal/player"
)

// runtimeConfig is Config resolved into what the components use.
type runtimeConfig struct {
	fetchTimeout time.Duration
	idleAfter    time.Duration
	negativeTTL  time.Duration
}

// Edge is the edge cache server. Create it with New; serve with Serve.
type Edge struct {
	cfg     runtimeConfig
	conf    Config
	log     *slog.Logger
	up      *upstreams
	cache   *cache
	flight  flightGroup
	core    *llhls.Handler
	mux     *http.ServeMux
	root    http.Handler // mux, with a shortcut for /live/
	metrics *metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	streams  map[string]*stream
	negative map[string]time.Time // unknown broadcast -> until when
	mvFlight singleflight.Group
}

// New validates cfg and builds an Edge. logger defaults to slog.Default().
func New(cfg Config, logger *slog.Logger) (*Edge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	log := logger.With("component", "edge")
	up, err := newUpstreams(cfg.Upstreams, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Edge{
		cfg: runtimeConfig{
			fetchTimeout: time.Duration(cfg.FetchTimeout),
			idleAfter:    time.Duration(cfg.TrackerIdle),
			negativeTTL:  time.Duration(cfg.NegativeTTL),
		},
		conf:     cfg,
		log:      log,
		up:       up,
		cache:    newCache(int64(cfg.CacheSize)),
		flight:   &singleflight.Group{},
		mux:      http.NewServeMux(),
		ctx:      ctx,
		cancel:   cancel,
		streams:  make(map[string]*stream),
		negative: make(map[string]time.Time),
	}
	e.metrics = newMetrics(e)
	up.count = func(kind string) { e.metrics.upstream.WithLabelValues(kind).Inc() }
	e.core, err = llhls.NewHandler(llhls.Config{
		Catalog:               catalog{e},
		DefaultTargetDuration: 2 * time.Second,
		SetAge:                true,
		Stop:                  ctx.Done(),
		Page:                  &player.Page{HLSJSURL: cfg.Player.HLSJSURL},
		Logger:                log,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	live := e.metrics.instrument(e.core)
	e.mux.Handle("/live/", live)
	e.mux.Handle("GET /metrics", e.metrics.handler())
	e.mux.HandleFunc("GET /healthz", httpserve.Health)
	// Listener requests skip the mux's routing when their path needs no
	// cleaning; anything with "//" or "/." goes through it (and its
	// redirects) as before.
	e.root = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; strings.HasPrefix(p, "/live/") && !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
			live.ServeHTTP(w, r)
			return
		}
		e.mux.ServeHTTP(w, r)
	})
	return e, nil
}

// Handler returns the edge's HTTP handler.
func (e *Edge) Handler() http.Handler { return e.root }

// catalog adapts Edge to llhls.Catalog.
type catalog struct{ e *Edge }

// Stream returns the broadcast name, fetching its multivariant playlist
// from upstream on first use. Names the upstream does not know are
// remembered for NegativeTTL, so a flood of random names costs the upstream
// at most one request per name per TTL.
func (c catalog) Stream(ctx context.Context, name string) llhls.Stream {
	e := c.e
	s, known := e.lookup(name)
	if !known {
		s = e.fetchStream(ctx, name)
	}
	if s == nil {
		return nil // not a nil *stream in the interface
	}
	return s
}

// fetchStream asks the upstream for broadcast name once, however many
// requests ask at the same time, and returns its stream, or nil.
func (e *Edge) fetchStream(ctx context.Context, name string) *stream {
	evloop.Detach(ctx) // the upstream's answer is waited for
	v, _, _ := e.mvFlight.Do(name, func() (any, error) {
		// A fill that ended between the caller's lookup and this call has
		// answered already.
		if s, known := e.lookup(name); known {
			return s, nil
		}
		ctx, cancel := context.WithTimeout(e.ctx, 2*e.cfg.fetchTimeout)
		defer cancel()
		res, err := e.up.get(ctx, "multivariant", name, "index.m3u8", "", e.cfg.fetchTimeout)
		if err != nil || res.status != http.StatusOK {
			e.mu.Lock()
			e.negative[name] = time.Now().Add(e.cfg.negativeTTL)
			e.pruneNegativeLocked()
			e.mu.Unlock()
			return nil, err
		}
		lists := mediaPlaylists(res.body)
		s := &stream{
			e:         e,
			name:      name,
			mv:        &llhls.Object{Data: res.body, ContentType: "application/vnd.apple.mpegurl", Created: time.Now().Add(-res.age)},
			trackers:  make(map[string]*tracker),
			missing:   make(map[string]time.Time),
			playlists: make(map[string]bool, len(lists)),
		}
		if len(lists) > 0 {
			s.primary = lists[0]
		}
		for _, l := range lists {
			s.playlists[l] = true
		}
		e.mu.Lock()
		e.streams[name] = s
		e.mu.Unlock()
		return s, nil
	})
	s, _ := v.(*stream)
	return s
}

// lookup returns the stream of name when it is known, or known false when
// the upstream must be asked; a nil stream with known true is a name the
// upstream did not know within NegativeTTL.
func (e *Edge) lookup(name string) (s *stream, known bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.streams[name]; ok {
		return s, true
	}
	if until, ok := e.negative[name]; ok && time.Now().Before(until) {
		return nil, true
	}
	return nil, false
}

// pruneNegativeLocked bounds the negative cache.
func (e *Edge) pruneNegativeLocked() {
	if len(e.negative) < 10000 {
		return
	}
	now := time.Now()
	for k, until := range e.negative {
		if now.After(until) {
			delete(e.negative, k)
		}
	}
}

// mediaPlaylists returns the playlist URIs a multivariant playlist lists
// (variant lines and EXT-X-MEDIA URIs) that are plain file names, in order.
func mediaPlaylists(mv []byte) []string {
	var out []string
	add := func(uri string) {
		if strings.HasSuffix(uri, ".m3u8") && !strings.ContainsAny(uri, "/?#") && !slices.Contains(out, uri) {
			out = append(out, uri)
		}
	}
	for _, line := range strings.Split(string(mv), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case line[0] != '#':
			add(line)
		case strings.HasPrefix(line, "#EXT-X-MEDIA:"):
			if i := strings.Index(line, `URI="`); i >= 0 {
				uri, _, _ := strings.Cut(line[i+5:], `"`)
				add(uri)
			}
		}
	}
	return out
}

// known reports whether broadcast name is being served (for metric labels).
func (e *Edge) known(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.streams[name]
	return ok
}

// Serve serves on ln until ctx ends, then shuts down: held requests are
// released and the trackers stop.
func (e *Edge) Serve(ctx context.Context, ln net.Listener) error {
	// The edge's hot path, thousands of small keep-alive requests a
	// second, is served by h1 rather than net/http (see package h1).
	srv := &h1.Server{
		Handler:        e.root,
		MaxHeaderBytes: 8 << 10,
		MaxConns:       e.conf.MaxConns,
		Goroutines:     e.conf.Connections == httpserve.ConnGoroutines,
		OnLoop:         httpserve.OnLoop,
		Logger:         e.log,
	}
	e.log.Info("edge listening", "addr", ln.Addr().String(), "upstreams", strings.Join(e.conf.Upstreams, ","))
	g, gctx := errgroup.WithContext(ctx)
	// Before shutting down, e.cancel stops the trackers and releases every
	// held request with 503, so listeners retry on another edge at once.
	g.Go(func() error { return httpserve.Serve(gctx, srv, ln, e.cancel) })
	g.Go(func() error {
		e.janitor(gctx)
		return nil
	})
	err := g.Wait()
	e.cancel()
	e.wg.Wait()
	return err
}

// Run listens on cfg.Listen and serves until ctx ends.
func (e *Edge) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", e.conf.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return e.Serve(ctx, ln)
}

// janitor forgets streams whose trackers have all stopped.
func (e *Edge) janitor(ctx context.Context) {
	t := time.NewTicker(e.cfg.idleAfter)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		for name, s := range e.streams {
			s.mu.Lock()
			idle := len(s.trackers) == 0
			s.mu.Unlock()
			if idle {
				delete(e.streams, name)
			}
		}
		e.mu.Unlock()
	}
}
