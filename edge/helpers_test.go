package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/llhls"
	"github.com/amphi-live/amphi/origin"
	"github.com/amphi-live/amphi/segmenter"
)

// testLogger discards logs unless AMPHI_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("AMPHI_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startTestOrigin runs an origin with preset on 127.0.0.1:0 (its own
// listener is unused by the tests, which put counting servers in front of
// its handler) and stops it when the test ends.
func startTestOrigin(t testing.TB, preset string) *origin.Server {
	t.Helper()
	cfg := origin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Segmenter.Preset = preset
	cfg.Ingest.Open = true
	cfg.RTMP.Listen = ""
	srv, err := origin.New(cfg, testLogger())
	require.NoError(t, err)
	ln, err := net.Listen("tcp", cfg.Listen)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("origin stopped with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("origin did not stop within 10s")
		}
	})
	return srv
}

// publish starts broadcast name on srv: synthetic 180-byte AAC-LC access
// units at 48 kHz, written in real time until the test ends or the
// returned func ends the session. It returns once the origin lists a first
// complete segment.
func publish(t testing.TB, srv *origin.Server, name string) (end func()) {
	t.Helper()
	sess, err := srv.Publish(name, &segmenter.AAC{Config: &mpeg4audio.AudioSpecificConfig{
		Type: 2, SampleRate: 48000, ChannelConfig: 1,
	}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		const frame = time.Second * 1024 / 48000
		start := time.Now()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for n := 0; ; {
			// Write every frame whose time has come, so the stream keeps
			// real time however late the ticker fires.
			for due := int(time.Since(start) / frame); n <= due; n++ {
				au := make([]byte, 180)
				au[0], au[1], au[2] = byte(n), byte(n>>8), byte(n>>16)
				if err := sess.WriteAAC(time.Duration(n)*frame, [][]byte{au}); err != nil {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	end = func() { once.Do(func() { cancel(); <-done; sess.End() }) }
	t.Cleanup(end)

	// Wait (bounded) for the first complete segment.
	h := srv.Handler()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pl := directPlaylist(t, h, name); pl != nil && len(pl.Segments) > 0 && !pl.Ended {
			return end
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("broadcast %s produced no segment within 10s", name)
	return nil
}

// directPlaylist reads the media playlist of name straight from handler h,
// bypassing every counting server. nil when there is none yet.
func directPlaylist(t testing.TB, h http.Handler, name string) *llhls.Playlist {
	t.Helper()
	rec := newRecorder()
	h.ServeHTTP(rec, mustRequest(t, "/live/"+name+"/index.m3u8"))
	if rec.code != http.StatusOK {
		return nil
	}
	media := mediaPlaylistURI(rec.body.String())
	if media == "" {
		return nil
	}
	rec = newRecorder()
	h.ServeHTTP(rec, mustRequest(t, "/live/"+name+"/"+media))
	if rec.code != http.StatusOK {
		return nil
	}
	pl, err := llhls.ParsePlaylist([]byte(rec.body.String()))
	require.NoError(t, err)
	return pl
}

func mustRequest(t testing.TB, target string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, "http://origin.test"+target, nil)
	require.NoError(t, err)
	return r
}

// recorder is a minimal concurrency-safe http.ResponseWriter.
type recorder struct {
	mu   sync.Mutex
	hdr  http.Header
	code int
	body strings.Builder
}

func newRecorder() *recorder { return &recorder{hdr: http.Header{}, code: http.StatusOK} }

func (r *recorder) Header() http.Header { return r.hdr }
func (r *recorder) WriteHeader(code int) {
	r.mu.Lock()
	r.code = code
	r.mu.Unlock()
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.Write(b)
}

// mediaPlaylistURI is the first media playlist a multivariant playlist
// lists: an EXT-X-MEDIA URI or a variant URI line.
func mediaPlaylistURI(mv string) string {
	for _, line := range strings.Split(mv, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-MEDIA:"):
			if _, rest, ok := strings.Cut(line, `URI="`); ok {
				uri, _, _ := strings.Cut(rest, `"`)
				return uri
			}
		case line[0] != '#':
			return line
		}
	}
	return ""
}

// upstreamLog counts and records the requests an upstream server receives.
type upstreamLog struct {
	mu       sync.Mutex
	requests []upstreamRequest
}

type upstreamRequest struct {
	kind  string // "multivariant", "blocking_playlist", "playlist", "media"
	path  string
	query string
	host  string
	at    time.Time
	took  *atomic.Int64 // nanoseconds until the handler returned; 0 while in flight
	code  *atomic.Int32
}

func (l *upstreamLog) record(r *http.Request) upstreamRequest {
	kind := "media"
	switch {
	case strings.HasSuffix(r.URL.Path, "/index.m3u8"):
		kind = "multivariant"
	case strings.HasSuffix(r.URL.Path, ".m3u8") && strings.Contains(r.URL.RawQuery, "_HLS_msn="):
		kind = "blocking_playlist"
	case strings.HasSuffix(r.URL.Path, ".m3u8"):
		kind = "playlist"
	}
	u := upstreamRequest{kind: kind, path: r.URL.Path, query: r.URL.RawQuery, host: r.Host, at: time.Now(),
		took: new(atomic.Int64), code: new(atomic.Int32)}
	l.mu.Lock()
	l.requests = append(l.requests, u)
	l.mu.Unlock()
	return u
}

// snapshot returns a copy of the requests recorded so far.
func (l *upstreamLog) snapshot() []upstreamRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]upstreamRequest(nil), l.requests...)
}

func (l *upstreamLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.requests)
}

// countWhere counts the recorded requests that match.
func (l *upstreamLog) countWhere(match func(upstreamRequest) bool) int {
	n := 0
	for _, r := range l.snapshot() {
		if match(r) {
			n++
		}
	}
	return n
}

// byKind counts the requests recorded in [from, to).
func (l *upstreamLog) byKind(from, to int) map[string]int {
	out := map[string]int{}
	for _, r := range l.snapshot()[from:to] {
		out[r.kind]++
	}
	return out
}

// upstreamServer is an http.Server in front of a handler (the origin's, or
// a fake) that records every request; Close kills it abruptly, connections
// in flight included, as a crashed upstream would.
type upstreamServer struct {
	URL string
	log *upstreamLog
	srv *http.Server
}

func startUpstream(t testing.TB, h http.Handler, log *upstreamLog) *upstreamServer {
	t.Helper()
	if log == nil {
		log = &upstreamLog{}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := &upstreamServer{URL: "http://" + ln.Addr().String(), log: log}
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u := log.record(r)
			sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			h.ServeHTTP(sw, r)
			u.code.Store(int32(sw.code))
			u.took.Store(int64(time.Since(u.at)))
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(testLogger().Handler(), slog.LevelDebug),
	}
	go u.srv.Serve(ln)
	t.Cleanup(u.Close)
	return u
}

// Close stops the server at once: the listener and every connection close.
func (u *upstreamServer) Close() { u.srv.Close() }

// testEdge is an Edge serving on 127.0.0.1:0.
type testEdge struct {
	*Edge
	URL    string
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returned
	err    error         // what Serve returned; read after done
}

func testEdgeConfig(upstreams ...string) Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstreams = upstreams
	cfg.CacheSize = 64 << 20
	return cfg
}

// startEdge runs an edge with cfg until the test ends (or stop is called).
func startEdge(t testing.TB, cfg Config) *testEdge {
	t.Helper()
	e, err := New(cfg, testLogger())
	require.NoError(t, err)
	ln, err := net.Listen("tcp", cfg.Listen)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	te := &testEdge{Edge: e, URL: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		te.err = e.Serve(ctx, ln)
		close(te.done)
	}()
	t.Cleanup(func() { te.stop(t) })
	return te
}

// stop cancels Serve's context and waits (bounded) for Serve to return.
func (te *testEdge) stop(t testing.TB) {
	te.cancel()
	select {
	case <-te.done:
		if te.err != nil && !errors.Is(te.err, context.Canceled) {
			t.Errorf("edge stopped with %v", te.err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("edge did not stop within 10s")
	}
}

// metricsText returns the edge's /metrics page.
func metricsText(t testing.TB, e *Edge) string {
	t.Helper()
	rec := newRecorder()
	e.Handler().ServeHTTP(rec, mustRequest(t, "/metrics"))
	require.Equal(t, http.StatusOK, rec.code)
	return rec.body.String()
}

// metricValue sums the samples of the metric named name (any labels).
func metricValue(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		var v float64
		fields := strings.Fields(rest)
		if _, err := fmt.Sscan(fields[len(fields)-1], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// newClient returns a client for n concurrent listeners on loopback. It
// does not ask for gzip: the serving core compresses the multivariant
// playlist afresh for every request (internal/llhls writePlaylist), which
// with hundreds of joins under -race on a 2-core machine costs seconds of
// CPU and makes listeners miss real time for reasons that are not the edge's.
func newClient(n int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DisableCompression:  true,
			MaxIdleConns:        2 * n,
			MaxIdleConnsPerHost: n,
			IdleConnTimeout:     30 * time.Second,
		},
		Timeout: 15 * time.Second,
	}
}

// partClock counts the parts an origin makes: it reads the origin's media
// playlist in process (no HTTP, nothing counted) every 250 ms and collects
// the part URIs that were not listed when it started.
type partClock struct {
	cancel context.CancelFunc
	done   chan int
	made   atomic.Int64
}

func startPartClock(t testing.TB, h http.Handler, name string) *partClock {
	t.Helper()
	seen := map[string]bool{}
	pl := directPlaylist(t, h, name)
	require.NotNil(t, pl)
	for _, p := range partsOf(pl) {
		seen[p.uri] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &partClock{cancel: cancel, done: make(chan int, 1)}
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if pl := directPlaylist(t, h, name); pl != nil {
				for _, p := range partsOf(pl) {
					if !seen[p.uri] {
						seen[p.uri] = true
						c.made.Add(1)
					}
				}
			}
			select {
			case <-ctx.Done():
				c.done <- int(c.made.Load())
				return
			case <-tick.C:
			}
		}
	}()
	return c
}

// now returns the number of parts made so far.
func (c *partClock) now() int { return int(c.made.Load()) }

// stop takes a last look and returns the number of parts made.
func (c *partClock) stop() int {
	c.cancel()
	return <-c.done
}
