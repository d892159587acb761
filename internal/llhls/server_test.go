package llhls

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	testStreamName  = "radio"
	testPlaylist    = "media.m3u8"
	testMediaType   = "audio/mp4"
	testTD          = 4 // seconds, the fake stream's target duration
	testDefaultTD   = 2 // seconds, Config.DefaultTargetDuration by default
	playlistPath    = "/live/radio/media.m3u8"
	multivariantURL = "/live/radio/index.m3u8"
)

const testMultivariant = "#EXTM3U\n#EXT-X-VERSION:9\n" +
	"#EXT-X-STREAM-INF:BANDWIDTH=140000,CODECS=\"mp4a.40.2\"\nmedia.m3u8\n"

// serverPL is the fake stream's live playlist: segments 100–102 (101 and 102
// list their parts), trailing complete parts of 103, and the next part hinted.
func serverPL(trailing int) *Playlist {
	p := testLive(100, 3, 2, trailing)
	p.TargetDuration = testTD
	return p
}

// serverPLNextSegment is serverPL after segment 103 completed and one part of
// 104 exists.
func serverPLNextSegment() *Playlist {
	p := testLive(100, 4, 2, 1)
	p.TargetDuration = testTD
	return p
}

func endedServerPL() *Playlist {
	p := testLive(100, 4, 2, 0)
	p.TargetDuration = testTD
	p.Ended = true
	return p
}

// testObjectData is 100 bytes that differ per URI.
func testObjectData(uri string) []byte {
	b := make([]byte, 100)
	for i := range b {
		b[i] = uri[i%len(uri)] ^ byte(i)
	}
	return b
}

// fakeStream is a Stream driven by publishing playlists to its one feed, as
// the origin's broadcast is.
type fakeStream struct {
	feed *Feed

	mu           sync.Mutex
	multivariant *Object
	media        map[string]*Object

	// mediaFn, when set, answers Media instead of the stored objects.
	mediaFn func(file string) *Object
	// onPlaylist, when set, is called on every Playlist lookup.
	onPlaylist func(file string)
}

func newFakeStream(pl *Playlist) *fakeStream {
	s := &fakeStream{media: map[string]*Object{}}
	s.store(pl)
	s.feed = NewFeed(NewSnapshot(pl, time.Now()))
	return s
}

// store adds the objects pl lists, as a producer does before publishing.
func (s *fakeStream) store(pl *Playlist) {
	s.mu.Lock()
	defer s.mu.Unlock()
	add := func(uri string) {
		if _, ok := s.media[uri]; !ok && uri != "" {
			s.media[uri] = &Object{Data: testObjectData(uri), ContentType: testMediaType}
		}
	}
	add(pl.MapURI)
	for _, seg := range pl.Segments {
		add(seg.URI)
		for _, p := range seg.Parts {
			add(p.URI)
		}
	}
	for _, p := range pl.Parts {
		add(p.URI)
	}
}

func (s *fakeStream) publish(pl *Playlist) {
	s.store(pl)
	s.feed.Publish(NewSnapshot(pl, time.Now()))
}

func (s *fakeStream) setMultivariant(o *Object) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.multivariant = o
}

func (s *fakeStream) setMedia(file string, o *Object) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.media[file] = o
}

func (s *fakeStream) Multivariant() *Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.multivariant
}

func (s *fakeStream) Primary() *Feed { return s.feed }

func (s *fakeStream) Playlist(_ context.Context, file string) *Feed {
	if s.onPlaylist != nil {
		s.onPlaylist(file)
	}
	if file == testPlaylist {
		return s.feed
	}
	return nil
}

func (s *fakeStream) Media(_ context.Context, file string) *Object {
	if s.mediaFn != nil {
		return s.mediaFn(file)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.media[file]
}

func (s *fakeStream) Hinted(file string) *Feed {
	if s.feed.Current().Playlist().PreloadHint == file {
		return s.feed
	}
	return nil
}

type fakeCatalog map[string]Stream

func (c fakeCatalog) Stream(_ context.Context, name string) Stream { return c[name] }

type catalogFunc func(name string) Stream

func (f catalogFunc) Stream(_ context.Context, name string) Stream { return f(name) }

// newTestHandler serves st as /live/radio/ with a quiet logger; opts adjust
// the config.
func newTestHandler(t *testing.T, st Stream, opts ...func(*Config)) *Handler {
	t.Helper()
	cfg := Config{
		Catalog: fakeCatalog{testStreamName: st},
		Logger:  slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := NewHandler(cfg)
	require.NoError(t, err)
	return h
}

func newLiveHandler(t *testing.T, opts ...func(*Config)) (*Handler, *fakeStream) {
	st := newFakeStream(serverPL(2))
	st.setMultivariant(&Object{Data: []byte(testMultivariant), ContentType: "application/vnd.apple.mpegurl"})
	return newTestHandler(t, st, opts...), st
}

func maxAge(secs int) string { return "public, max-age=" + strconv.Itoa(secs) }

// serve runs one request to completion on the calling goroutine.
func serve(h http.Handler, method, target string, hdr ...string) *http.Response {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// pending is a request served on its own goroutine, so that a test can watch
// it being held.
type pending struct {
	rec      *httptest.ResponseRecorder
	done     chan struct{}
	cancel   context.CancelFunc
	start    time.Time
	returned time.Time
}

func startRequest(h http.Handler, target string, hdr ...string) *pending {
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	p := &pending{rec: httptest.NewRecorder(), done: make(chan struct{}), cancel: cancel, start: time.Now()}
	go func() {
		defer close(p.done)
		h.ServeHTTP(p.rec, req)
		p.returned = time.Now()
	}()
	return p
}

func (p *pending) finished() bool { return isClosed(p.done) }

// result waits for the handler to return.
func (p *pending) result() *http.Response {
	<-p.done
	p.cancel()
	return p.rec.Result()
}

func (p *pending) elapsed() time.Duration { return p.returned.Sub(p.start) }

func TestNewHandler(t *testing.T) {
	_, err := NewHandler(Config{})
	require.ErrorContains(t, err, "Catalog")

	h, err := NewHandler(Config{Catalog: fakeCatalog{}})
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, h.cfg.DefaultTargetDuration)
	require.Equal(t, 3, h.cfg.HoldFactor)
	require.Equal(t, 10*time.Second, h.cfg.WriteTimeout)
	require.NotNil(t, h.cfg.Logger)
	require.NotNil(t, h.cfg.Now)

	mux := http.NewServeMux()
	h.Register(mux)
	_, pattern := mux.Handler(httptest.NewRequest(http.MethodGet, "/live/x/index.m3u8", nil))
	require.Equal(t, "/live/", pattern)
}

func TestHandlerUnknownStream(t *testing.T) {
	for _, tc := range []struct {
		name      string
		target    string
		defaultTD time.Duration
		want      string
	}{
		{"plain playlist", "/live/nope/media.m3u8", 0, maxAge(testDefaultTD)},
		{"blocking playlist", "/live/nope/media.m3u8?_HLS_msn=5", 0, maxAge(4 * testDefaultTD)},
		{"blocking part", "/live/nope/media.m3u8?_HLS_msn=5&_HLS_part=1", 0, maxAge(4 * testDefaultTD)},
		{"malformed directives", "/live/nope/media.m3u8?_HLS_msn=abc", 0, maxAge(testDefaultTD)},
		{"skip only", "/live/nope/media.m3u8?_HLS_skip=YES", 0, maxAge(testDefaultTD)},
		{"multivariant", "/live/nope/index.m3u8", 0, maxAge(testDefaultTD)},
		{"media object", "/live/nope/part1.0.m4s", 0, maxAge(testDefaultTD)},
		{"player page", "/live/nope/", 0, maxAge(testDefaultTD)},
		{"other default, plain", "/live/nope/media.m3u8", 6 * time.Second, maxAge(6)},
		{"other default, blocking", "/live/nope/media.m3u8?_HLS_msn=5", 6 * time.Second, maxAge(24)},
		{"unknown playlist of a known stream", "/live/radio/other.m3u8", 0, maxAge(testDefaultTD)},
		{"unknown blocking playlist of a known stream", "/live/radio/other.m3u8?_HLS_msn=1", 0, maxAge(4 * testDefaultTD)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, _ := newLiveHandler(t, func(c *Config) { c.DefaultTargetDuration = tc.defaultTD })
				start := time.Now()
				resp := serve(h, http.MethodGet, tc.target)
				require.Zero(t, time.Since(start), "answered without a hold")
				require.Equal(t, http.StatusNotFound, resp.StatusCode)
				require.Equal(t, tc.want, resp.Header.Get("Cache-Control"))
				require.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
				require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
			})
		})
	}
}

func TestHandlerBadDirectives(t *testing.T) {
	for _, query := range []string{
		"_HLS_msn=abc",
		"_HLS_msn=-1",
		"_HLS_msn=",
		"_HLS_msn=99999999999999999999",
		"_HLS_msn=1&_HLS_part=x",
		"_HLS_part=1",
		"_HLS_part=1&_HLS_skip=YES",
		"_HLS_skip=NO",
		"_HLS_msn=103&_HLS_msn=103",
		"_HLS_msn=%zz",
	} {
		t.Run(query, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, _ := newLiveHandler(t)
				start := time.Now()
				resp := serve(h, http.MethodGet, playlistPath+"?"+query)
				require.Zero(t, time.Since(start))
				require.Equal(t, http.StatusBadRequest, resp.StatusCode)
				require.Equal(t, maxAge(testTD), resp.Header.Get("Cache-Control"))
				require.True(t, strings.HasPrefix(body(t, resp), "400 "))
			})
		})
	}
}

func TestHandlerTooFar(t *testing.T) {
	// serverPL(2): last part is 103.1; Advance Part Limit 15 (0.21333 s parts).
	for _, tc := range []struct {
		query string
		code  int
	}{
		{"_HLS_msn=106", http.StatusBadRequest},
		{"_HLS_msn=1000", http.StatusBadRequest},
		{"_HLS_msn=1099511627776", http.StatusBadRequest},
		{"_HLS_msn=103&_HLS_part=17", http.StatusBadRequest},
		{"_HLS_msn=104&_HLS_part=15", http.StatusBadRequest},
		{"_HLS_msn=106&_HLS_skip=YES", http.StatusBadRequest},
		// At the limits the request is held instead (here until it expires).
		{"_HLS_msn=105", http.StatusServiceUnavailable},
		{"_HLS_msn=103&_HLS_part=16", http.StatusServiceUnavailable},
		{"_HLS_msn=104&_HLS_part=14", http.StatusServiceUnavailable},
	} {
		t.Run(tc.query, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, _ := newLiveHandler(t)
				start := time.Now()
				resp := serve(h, http.MethodGet, playlistPath+"?"+tc.query)
				require.Equal(t, tc.code, resp.StatusCode)
				if tc.code == http.StatusBadRequest {
					require.Zero(t, time.Since(start), "400 must come at once")
					require.Equal(t, maxAge(testTD), resp.Header.Get("Cache-Control"))
					require.Contains(t, body(t, resp), "too far")
				} else {
					require.Equal(t, 3*testTD*time.Second, time.Since(start))
				}
			})
		})
	}
}

func TestHandlerBlockingRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		query   string
		publish []func() *Playlist // the last one releases the request
		delta   bool
	}{
		{"next part", "_HLS_msn=103&_HLS_part=2",
			[]func() *Playlist{func() *Playlist { return serverPL(3) }}, false},
		{"part beyond the next, two publishes", "_HLS_msn=103&_HLS_part=3",
			[]func() *Playlist{func() *Playlist { return serverPL(3) }, func() *Playlist { return serverPL(4) }}, false},
		{"next segment, msn only", "_HLS_msn=104",
			[]func() *Playlist{func() *Playlist { return serverPL(3) }, serverPLNextSegment}, false},
		{"first part of the next segment", "_HLS_msn=104&_HLS_part=0",
			[]func() *Playlist{func() *Playlist { return serverPL(4) }, serverPLNextSegment}, false},
		{"part past the last of a complete segment", "_HLS_msn=103&_HLS_part=5",
			[]func() *Playlist{func() *Playlist { return serverPL(5) }, serverPLNextSegment}, false},
		{"delta update", "_HLS_msn=103&_HLS_part=2&_HLS_skip=YES",
			[]func() *Playlist{func() *Playlist { return serverPL(3) }}, true},
		{"directives in another order", "_HLS_part=2&foo=bar&_HLS_msn=103",
			[]func() *Playlist{func() *Playlist { return serverPL(3) }}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, st := newLiveHandler(t)
				req := startRequest(h, playlistPath+"?"+tc.query)
				var last *Playlist
				for _, pub := range tc.publish {
					synctest.Wait()
					require.False(t, req.finished(), "answered before the publish that satisfies it")
					time.Sleep(300 * time.Millisecond)
					last = pub()
					st.publish(last)
				}
				resp := req.result()
				require.Equal(t, time.Duration(len(tc.publish))*300*time.Millisecond, req.elapsed(),
					"released the moment the publish landed")
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Equal(t, maxAge(6*testTD), resp.Header.Get("Cache-Control"))
				require.Equal(t, "application/vnd.apple.mpegurl", resp.Header.Get("Content-Type"))
				got := body(t, resp)
				require.Equal(t, mustRender(t, last, tc.delta), got)
				require.Equal(t, strconv.Itoa(len(got)), resp.Header.Get("Content-Length"))
			})
		})
	}
}

func TestHandlerBlockingSatisfiedAtOnce(t *testing.T) {
	for _, query := range []string{
		"_HLS_msn=103&_HLS_part=1",
		"_HLS_msn=103",
		"_HLS_msn=102&_HLS_part=9",
		"_HLS_msn=50",
	} {
		t.Run(query, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, _ := newLiveHandler(t)
				start := time.Now()
				resp := serve(h, http.MethodGet, playlistPath+"?"+query)
				require.Zero(t, time.Since(start))
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Equal(t, maxAge(6*testTD), resp.Header.Get("Cache-Control"))
				require.Equal(t, mustRender(t, serverPL(2), false), body(t, resp))
			})
		})
	}
}

// One publish releases every held request, with the same bytes.
func TestHandlerManyHeldRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, st := newLiveHandler(t)
		reqs := make([]*pending, 100)
		for i := range reqs {
			q := "_HLS_msn=103&_HLS_part=2"
			if i%3 == 0 {
				q = "_HLS_part=2&_HLS_msn=103"
			}
			reqs[i] = startRequest(h, playlistPath+"?"+q)
		}
		synctest.Wait()
		for _, r := range reqs {
			require.False(t, r.finished())
		}
		next := serverPL(3)
		st.publish(next)
		want := mustRender(t, next, false)
		for _, r := range reqs {
			resp := r.result()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Zero(t, r.elapsed())
			require.Equal(t, want, body(t, resp))
		}
	})
}

func TestHandlerPlainPlaylist(t *testing.T) {
	for _, tc := range []struct {
		td   int
		want string
	}{
		{1, maxAge(1)},
		{2, maxAge(1)},
		{3, maxAge(1)},
		{4, maxAge(2)},
		{6, maxAge(3)},
		{7, maxAge(3)},
		{10, maxAge(5)},
	} {
		t.Run(strconv.Itoa(tc.td), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pl := serverPL(2)
				pl.TargetDuration = tc.td
				h := newTestHandler(t, newFakeStream(pl))
				start := time.Now()
				resp := serve(h, http.MethodGet, playlistPath+"?token=abc")
				require.Zero(t, time.Since(start))
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Equal(t, tc.want, resp.Header.Get("Cache-Control"))
				require.Equal(t, "application/vnd.apple.mpegurl", resp.Header.Get("Content-Type"))
				require.Equal(t, "Accept-Encoding", resp.Header.Get("Vary"))
				require.Empty(t, resp.Header.Get("Content-Encoding"))
				got := body(t, resp)
				require.Equal(t, mustRender(t, pl, false), got)
				require.Equal(t, strconv.Itoa(len(got)), resp.Header.Get("Content-Length"))
			})
		})
	}
}

func TestHandlerDeltaUpdate(t *testing.T) {
	long := func() *Playlist {
		p := longPlaylist()
		p.TargetDuration = testTD
		return p
	}
	for _, tc := range []struct {
		name     string
		pl       func() *Playlist
		wantSkip string
	}{
		{"long playlist", long, "#EXT-X-SKIP:SKIPPED-SEGMENTS=14\n"},
		{"nothing to skip", func() *Playlist { return serverPL(2) }, "#EXT-X-SKIP:SKIPPED-SEGMENTS=0\n"},
		{"ended: full playlist", func() *Playlist {
			p := long()
			p.Ended = true
			return p
		}, ""},
		{"no delta updates offered: full playlist", func() *Playlist {
			p := long()
			p.CanSkipUntil = 0
			return p
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pl := tc.pl()
				h := newTestHandler(t, newFakeStream(pl))
				resp := serve(h, http.MethodGet, playlistPath+"?_HLS_skip=YES")
				require.Equal(t, http.StatusOK, resp.StatusCode)
				got := body(t, resp)
				if tc.wantSkip == "" {
					require.NotContains(t, got, "#EXT-X-SKIP")
					require.Equal(t, mustRender(t, pl, false), got)
				} else {
					require.Contains(t, got, tc.wantSkip)
					require.Equal(t, mustRender(t, pl, true), got)
				}
				// A plain request afterwards still gets the full playlist.
				resp = serve(h, http.MethodGet, playlistPath)
				require.Equal(t, mustRender(t, pl, false), body(t, resp))
			})
		})
	}
}

func TestHandlerHoldExpires(t *testing.T) {
	empty := func() *Playlist { return &Playlist{} }
	for _, tc := range []struct {
		name       string
		pl         func() *Playlist
		target     string
		holdFactor int
		want       time.Duration
		retry      string
	}{
		{"next part never comes", func() *Playlist { return serverPL(2) },
			playlistPath + "?_HLS_msn=103&_HLS_part=2", 0, 3 * testTD * time.Second, "4"},
		{"next segment never comes", func() *Playlist { return serverPL(2) },
			playlistPath + "?_HLS_msn=104", 0, 3 * testTD * time.Second, "4"},
		{"hold factor 5", func() *Playlist { return serverPL(2) },
			playlistPath + "?_HLS_msn=103&_HLS_part=2", 5, 5 * testTD * time.Second, "4"},
		{"plain request, no content yet", empty, playlistPath, 0, 3 * testDefaultTD * time.Second, "2"},
		{"blocking request, no content yet", empty, playlistPath + "?_HLS_msn=0", 0, 3 * testDefaultTD * time.Second, "2"},
		{"hinted part never comes", func() *Playlist { return serverPL(2) },
			"/live/radio/part103.2.m4s", 0, 3 * testTD * time.Second, "4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := newFakeStream(tc.pl())
				h := newTestHandler(t, st, func(c *Config) { c.HoldFactor = tc.holdFactor })
				req := startRequest(h, tc.target)
				// Updates that do not satisfy the hold neither end nor extend it.
				for range 3 {
					time.Sleep(time.Second)
					st.publish(tc.pl())
				}
				resp := req.result()
				require.Equal(t, tc.want, req.elapsed())
				require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
				require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
				require.Equal(t, tc.retry, resp.Header.Get("Retry-After"))
				require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
				// Never the unchanged playlist (AVPlayer -15410).
				require.NotContains(t, body(t, resp), "#EXTM3U")
			})
		})
	}
}

func TestHandlerPlainRequestWaitsForContent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFakeStream(&Playlist{})
		h := newTestHandler(t, st)
		req := startRequest(h, playlistPath)
		synctest.Wait()
		require.False(t, req.finished())
		time.Sleep(time.Second)
		pl := serverPL(0)
		st.publish(pl)
		resp := req.result()
		require.Equal(t, time.Second, req.elapsed())
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, mustRender(t, pl, false), body(t, resp))
	})
}

func TestHandlerEndedReleasesHold(t *testing.T) {
	for _, query := range []string{
		"_HLS_msn=103&_HLS_part=2",
		"_HLS_msn=105",
		"_HLS_msn=104&_HLS_part=3&_HLS_skip=YES",
	} {
		t.Run(query, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, st := newLiveHandler(t)
				req := startRequest(h, playlistPath+"?"+query)
				synctest.Wait()
				require.False(t, req.finished())
				time.Sleep(time.Second)
				final := endedServerPL()
				st.publish(final)
				resp := req.result()
				require.Equal(t, time.Second, req.elapsed())
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Equal(t, maxAge(6*testTD), resp.Header.Get("Cache-Control"))
				got := body(t, resp)
				require.True(t, strings.HasSuffix(got, "#EXT-X-ENDLIST\n"))
				require.NotContains(t, got, "#EXT-X-PRELOAD-HINT")
				require.NotContains(t, got, "#EXT-X-SKIP")
				require.Equal(t, mustRender(t, final, false), got)

				// From now on directives are ignored: any msn is answered at once.
				start := time.Now()
				resp = serve(h, http.MethodGet, playlistPath+"?_HLS_msn=100000&_HLS_part=99")
				require.Zero(t, time.Since(start))
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Equal(t, got, body(t, resp))
			})
		})
	}
}

// A held request whose client leaves ends at once and writes nothing.
func TestHandlerClientGone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target string
		mod    func(*fakeStream)
	}{
		{"blocking playlist", playlistPath + "?_HLS_msn=103&_HLS_part=2", nil},
		{"playlist without content", playlistPath, func(st *fakeStream) { st.publish(&Playlist{}) }},
		{"hinted part", "/live/radio/part103.2.m4s", nil},
		{"multivariant", multivariantURL, func(st *fakeStream) { st.setMultivariant(nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, st := newLiveHandler(t)
				if tc.mod != nil {
					tc.mod(st)
				}
				req := startRequest(h, tc.target)
				synctest.Wait()
				require.False(t, req.finished())
				time.Sleep(2 * time.Second)
				req.cancel()
				<-req.done
				require.Equal(t, 2*time.Second, req.elapsed())
				require.Zero(t, req.rec.Body.Len(), "nothing written for a client that left")
				require.Empty(t, req.rec.Header().Get("Retry-After"))
				require.Empty(t, req.rec.Header().Get("Cache-Control"))
			})
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		ae   string
		want bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{" deflate , gzip ", true},
		{"*", true},
		{"gzip;q=0", false},
		{"gzip; q=0", false},
		{"gzip;q=0.0", false},
		{"gzip;q=0.000", false},
		{"br, gzip;q=0", false},
		{"identity", false},
		{"deflate, br", false},
		{"*;q=0", false},
		{"gzip;q=0.5, *;q=0", true},
		{"*, gzip;q=0", false},
		{"gzip;Q=0", false},
	} {
		t.Run(tc.ae, func(t *testing.T) {
			require.Equal(t, tc.want, acceptsGzip(tc.ae))
		})
	}
}

func TestHandlerGzip(t *testing.T) {
	for _, tc := range []struct {
		ae   string
		want bool
	}{
		{"gzip", true},
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"gzip;q=0", false},
		{"identity", false},
		{"", false},
	} {
		t.Run(tc.ae, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, _ := newLiveHandler(t)
				for _, c := range []struct {
					target string
					want   string
				}{
					{playlistPath, mustRender(t, serverPL(2), false)},
					{playlistPath + "?_HLS_msn=103", mustRender(t, serverPL(2), false)},
					{multivariantURL, testMultivariant},
				} {
					for _, method := range []string{http.MethodGet, http.MethodHead} {
						resp := serve(h, method, c.target, "Accept-Encoding", tc.ae)
						require.Equal(t, http.StatusOK, resp.StatusCode)
						require.Equal(t, "Accept-Encoding", resp.Header.Get("Vary"))
						got := []byte(body(t, resp))
						if method == http.MethodHead {
							require.Empty(t, got)
							continue
						}
						require.Equal(t, strconv.Itoa(len(got)), resp.Header.Get("Content-Length"))
						if tc.want {
							require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
							got = gunzip(t, got)
						} else {
							require.Empty(t, resp.Header.Get("Content-Encoding"))
						}
						require.Equal(t, c.want, string(got), c.target)
					}
				}
				// Media objects are never compressed.
				resp := serve(h, http.MethodGet, "/live/radio/seg102.m4s", "Accept-Encoding", tc.ae)
				require.Empty(t, resp.Header.Get("Content-Encoding"))
				require.Equal(t, testObjectData("seg102.m4s"), []byte(body(t, resp)))
			})
		})
	}
}

func TestHandlerCORS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		target string
		hdr    []string
		code   int
	}{
		{"playlist", http.MethodGet, playlistPath, nil, http.StatusOK},
		{"blocking playlist", http.MethodGet, playlistPath + "?_HLS_msn=103", nil, http.StatusOK},
		{"multivariant", http.MethodGet, multivariantURL, nil, http.StatusOK},
		{"media", http.MethodGet, "/live/radio/seg102.m4s", nil, http.StatusOK},
		{"range", http.MethodGet, "/live/radio/seg102.m4s", []string{"Range", "bytes=0-9"}, http.StatusPartialContent},
		{"head", http.MethodHead, playlistPath, nil, http.StatusOK},
		{"bad request", http.MethodGet, playlistPath + "?_HLS_part=1", nil, http.StatusBadRequest},
		{"not found", http.MethodGet, "/live/nope/media.m3u8", nil, http.StatusNotFound},
		{"bad path", http.MethodGet, "/live/UPPER/media.m3u8", nil, http.StatusNotFound},
		{"hold expired", http.MethodGet, playlistPath + "?_HLS_msn=104", nil, http.StatusServiceUnavailable},
		{"method not allowed", http.MethodPost, playlistPath, nil, http.StatusMethodNotAllowed},
		{"preflight", http.MethodOptions, playlistPath, []string{
			"Origin", "https://player.example", "Access-Control-Request-Method", "GET",
			"Access-Control-Request-Headers", "range",
		}, http.StatusNoContent},
		{"preflight on any path", http.MethodOptions, "/live/nope/x.m4s", nil, http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, _ := newLiveHandler(t)
				resp := serve(h, tc.method, tc.target, tc.hdr...)
				require.Equal(t, tc.code, resp.StatusCode)
				require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
				expose := resp.Header.Get("Access-Control-Expose-Headers")
				for _, name := range []string{"Age", "Content-Length", "Content-Range"} {
					require.Contains(t, expose, name)
				}
				switch tc.code {
				case http.StatusNoContent:
					require.Equal(t, "GET, HEAD, OPTIONS", resp.Header.Get("Access-Control-Allow-Methods"))
					require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Range")
					require.Equal(t, "86400", resp.Header.Get("Access-Control-Max-Age"))
					require.Empty(t, body(t, resp))
				case http.StatusMethodNotAllowed:
					require.Equal(t, "GET, HEAD, OPTIONS", resp.Header.Get("Allow"))
				}
			})
		})
	}
}

func TestHandlerHEAD(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newLiveHandler(t)

		resp := serve(h, http.MethodHead, playlistPath)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Empty(t, body(t, resp))
		require.Equal(t, strconv.Itoa(len(mustRender(t, serverPL(2), false))), resp.Header.Get("Content-Length"))
		require.Equal(t, "application/vnd.apple.mpegurl", resp.Header.Get("Content-Type"))
		require.Equal(t, maxAge(testTD/2), resp.Header.Get("Cache-Control"))

		resp = serve(h, http.MethodHead, multivariantURL)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Empty(t, body(t, resp))
		require.Equal(t, strconv.Itoa(len(testMultivariant)), resp.Header.Get("Content-Length"))

		resp = serve(h, http.MethodHead, "/live/radio/seg102.m4s")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Empty(t, body(t, resp))
		require.Equal(t, "100", resp.Header.Get("Content-Length"))
		require.Equal(t, testMediaType, resp.Header.Get("Content-Type"))
		require.Equal(t, "bytes", resp.Header.Get("Accept-Ranges"))
		require.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"))

		resp = serve(h, http.MethodHead, "/live/radio/missing.m4s")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

func TestHandlerMedia(t *testing.T) {
	for _, file := range []string{"init.mp4", "seg100.m4s", "seg102.m4s", "part102.4.m4s", "part103.1.m4s"} {
		t.Run(file, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, _ := newLiveHandler(t)
				start := time.Now()
				resp := serve(h, http.MethodGet, "/live/radio/"+file)
				require.Zero(t, time.Since(start))
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"))
				require.Equal(t, testMediaType, resp.Header.Get("Content-Type"))
				require.Equal(t, "100", resp.Header.Get("Content-Length"))
				require.Empty(t, resp.Header.Get("Age"))
				require.Empty(t, resp.Header.Get("Last-Modified"))
				require.Equal(t, testObjectData(file), []byte(body(t, resp)))
			})
		})
	}
}

func TestHandlerRange(t *testing.T) {
	data := testObjectData("seg102.m4s")
	for _, tc := range []struct {
		rng          string
		code         int
		contentRange string
		want         []byte
	}{
		{"bytes=10-19", http.StatusPartialContent, "bytes 10-19/100", data[10:20]},
		{"bytes=0-0", http.StatusPartialContent, "bytes 0-0/100", data[:1]},
		{"bytes=90-", http.StatusPartialContent, "bytes 90-99/100", data[90:]},
		// RFC 8673 open-ended request of an object still growing.
		{"bytes=90-9007199254740991", http.StatusPartialContent, "bytes 90-99/100", data[90:]},
		{"bytes=-5", http.StatusPartialContent, "bytes 95-99/100", data[95:]},
		{"bytes=0-", http.StatusPartialContent, "bytes 0-99/100", data},
		{"bytes=200-", http.StatusRequestedRangeNotSatisfiable, "bytes */100", nil},
		{"bytes=100-100", http.StatusRequestedRangeNotSatisfiable, "bytes */100", nil},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, _ := newLiveHandler(t)
				resp := serve(h, http.MethodGet, "/live/radio/seg102.m4s", "Range", tc.rng)
				require.Equal(t, tc.code, resp.StatusCode)
				require.Equal(t, tc.contentRange, resp.Header.Get("Content-Range"))
				if tc.want != nil {
					require.Equal(t, tc.want, []byte(body(t, resp)))
					require.Equal(t, strconv.Itoa(len(tc.want)), resp.Header.Get("Content-Length"))
					require.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"))
				}
			})
		})
	}

	t.Run("multiple ranges", func(t *testing.T) {
		h, _ := newLiveHandler(t)
		resp := serve(h, http.MethodGet, "/live/radio/seg102.m4s", "Range", "bytes=0-1,5-6")
		require.Equal(t, http.StatusPartialContent, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges"))
	})
}

func TestHandlerHintedPart(t *testing.T) {
	const hinted = "/live/radio/part103.2.m4s"

	t.Run("held until the part lands", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, st := newLiveHandler(t)
			req := startRequest(h, hinted)
			synctest.Wait()
			require.False(t, req.finished())

			// An update that still hints the part keeps the request held.
			time.Sleep(100 * time.Millisecond)
			again := serverPL(2)
			again.RenditionReports = []RenditionReport{{URI: "hi.m3u8", LastMSN: 103, LastPart: 2}}
			st.publish(again)
			synctest.Wait()
			require.False(t, req.finished())

			time.Sleep(100 * time.Millisecond)
			st.publish(serverPL(3)) // stores part103.2 first
			resp := req.result()
			require.Equal(t, 200*time.Millisecond, req.elapsed())
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"))
			require.Equal(t, testObjectData("part103.2.m4s"), []byte(body(t, resp)))
		})
	})

	t.Run("range on a held part", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, st := newLiveHandler(t)
			req := startRequest(h, hinted, "Range", "bytes=50-9007199254740991")
			synctest.Wait()
			require.False(t, req.finished())
			st.publish(serverPL(3))
			resp := req.result()
			require.Equal(t, http.StatusPartialContent, resp.StatusCode)
			require.Equal(t, "bytes 50-99/100", resp.Header.Get("Content-Range"))
			require.Equal(t, testObjectData("part103.2.m4s")[50:], []byte(body(t, resp)))
		})
	})

	t.Run("hint moves on without the part", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, st := newLiveHandler(t)
			req := startRequest(h, hinted)
			synctest.Wait()
			moved := serverPL(2)
			moved.PreloadHint = "other.m4s"
			st.publish(moved)
			resp := req.result()
			require.Zero(t, req.elapsed())
			require.Equal(t, http.StatusNotFound, resp.StatusCode)
			require.Equal(t, maxAge(testTD), resp.Header.Get("Cache-Control"))
		})
	})

	t.Run("broadcast ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, st := newLiveHandler(t)
			req := startRequest(h, hinted)
			synctest.Wait()
			final := serverPL(2)
			final.Ended = true
			st.publish(final)
			resp := req.result()
			require.Zero(t, req.elapsed())
			require.Equal(t, http.StatusNotFound, resp.StatusCode)
		})
	})

	t.Run("stored between the two lookups", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, st := newLiveHandler(t)
			var calls atomic.Int32
			obj := &Object{Data: []byte("late"), ContentType: testMediaType}
			st.mediaFn = func(string) *Object {
				if calls.Add(1) == 1 {
					return nil
				}
				return obj
			}
			resp := serve(h, http.MethodGet, "/live/radio/part99.0.m4s")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "late", body(t, resp))
		})
	})
}

func TestHandlerNotHinted(t *testing.T) {
	for _, file := range []string{"part103.3.m4s", "part104.0.m4s", "seg103.m4s", "nothing", "x.m4s"} {
		t.Run(file, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, _ := newLiveHandler(t)
				start := time.Now()
				resp := serve(h, http.MethodGet, "/live/radio/"+file)
				require.Zero(t, time.Since(start))
				require.Equal(t, http.StatusNotFound, resp.StatusCode)
				require.Equal(t, maxAge(testDefaultTD), resp.Header.Get("Cache-Control"))
			})
		})
	}
}

func TestHandlerBadPaths(t *testing.T) {
	// The catalog knows every name: refusals must come from the handler.
	newHandler := func(t *testing.T) (*Handler, *atomic.Int32) {
		st := newFakeStream(serverPL(2))
		var asked atomic.Int32
		h, err := NewHandler(Config{
			Catalog: catalogFunc(func(string) Stream {
				asked.Add(1)
				return st
			}),
			Logger: slog.New(slog.DiscardHandler),
			Page:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("page")) }),
		})
		require.NoError(t, err)
		return h, &asked
	}

	for _, target := range []string{
		"/live/../x",
		"/live/../live/radio/media.m3u8",
		"/live/UPPER/index.m3u8",
		"/live/a/b/c",
		"/live/radio/sub/media.m3u8",
		"/live/",
		"/live",
		"/live//index.m3u8",
		"/other/radio/index.m3u8",
		"/",
		"/live/a_b/index.m3u8",
		"/live/a.b/index.m3u8",
		"/live/" + strings.Repeat("a", 65) + "/index.m3u8",
		"/live/radio/.hidden",
		"/live/radio/..",
		"/live/radio/%2e%2e",
		"/live/radio/%2e%2e%2fsecret",
		"/live/radio/a%5Cb.m4s",
		"/live/radio/a%00b.m4s",
		"/live/radio",
	} {
		t.Run(target, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, asked := newHandler(t)
				start := time.Now()
				resp := serve(h, http.MethodGet, target)
				require.Zero(t, time.Since(start))
				require.Equal(t, http.StatusNotFound, resp.StatusCode)
				require.Equal(t, maxAge(testDefaultTD), resp.Header.Get("Cache-Control"))
				require.NotEqual(t, "page", body(t, resp))
				require.Zero(t, asked.Load(), "the catalog was asked about an invalid path")
			})
		})
	}

	t.Run("valid names reach the catalog", func(t *testing.T) {
		h, asked := newHandler(t)
		resp := serve(h, http.MethodGet, "/live/"+strings.Repeat("a", 64)+"/"+testPlaylist)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp = serve(h, http.MethodGet, "/live/radio-2/")
		require.Equal(t, "page", body(t, resp))
		require.Equal(t, int32(2), asked.Load())
	})
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"a", true},
		{"radio", true},
		{"radio-2", true},
		{"0", true},
		{strings.Repeat("z", 64), true},
		{"", false},
		{strings.Repeat("z", 65), false},
		{"Radio", false},
		{"a_b", false},
		{"a.b", false},
		{"a/b", false},
		{"..", false},
		{"a b", false},
		{"é", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ValidName(tc.name))
		})
	}
}

func TestHandlerPage(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("player page")) })
	h, _ := newLiveHandler(t, func(c *Config) { c.Page = page })
	resp := serve(h, http.MethodGet, "/live/radio/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "player page", body(t, resp))

	resp = serve(h, http.MethodGet, "/live/nope/")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	// Without a page the directory is not found.
	h, _ = newLiveHandler(t)
	resp = serve(h, http.MethodGet, "/live/radio/")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestHandlerMultivariant(t *testing.T) {
	mv := &Object{Data: []byte(testMultivariant), ContentType: "application/vnd.apple.mpegurl"}

	t.Run("available", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h, _ := newLiveHandler(t)
			start := time.Now()
			resp := serve(h, http.MethodGet, multivariantURL+"?_HLS_msn=5")
			require.Zero(t, time.Since(start))
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "application/vnd.apple.mpegurl", resp.Header.Get("Content-Type"))
			require.Equal(t, maxAge(testTD), resp.Header.Get("Cache-Control"))
			require.Equal(t, testMultivariant, body(t, resp))
		})
	})

	t.Run("waits for the first segment", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newFakeStream(&Playlist{})
			h := newTestHandler(t, st)
			req := startRequest(h, multivariantURL)
			synctest.Wait()
			require.False(t, req.finished())

			// A publish without the multivariant playlist keeps it held.
			time.Sleep(time.Second)
			st.publish(serverPL(0))
			synctest.Wait()
			require.False(t, req.finished())

			time.Sleep(time.Second)
			st.setMultivariant(mv)
			st.publish(serverPL(1))
			resp := req.result()
			require.Equal(t, 2*time.Second, req.elapsed())
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, testMultivariant, body(t, resp))
			// The target duration was unknown when the request came.
			require.Equal(t, maxAge(testDefaultTD), resp.Header.Get("Cache-Control"))
		})
	})

	t.Run("never comes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newTestHandler(t, newFakeStream(&Playlist{}))
			req := startRequest(h, multivariantURL)
			resp := req.result()
			require.Equal(t, 3*testDefaultTD*time.Second, req.elapsed())
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			require.Equal(t, strconv.Itoa(testDefaultTD), resp.Header.Get("Retry-After"))
		})
	})
}

func TestHandlerSetAge(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		setAge  bool
		created time.Time
		want    string
	}{
		{"off", false, now.Add(-7 * time.Second), ""},
		{"whole seconds", true, now.Add(-7500 * time.Millisecond), "7"},
		{"fresh", true, now, "0"},
		{"created in the future", true, now.Add(3 * time.Second), "0"},
		{"unknown creation time", true, time.Time{}, ""},
		{"old", true, now.Add(-2 * time.Hour), "7200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, st := newLiveHandler(t, func(c *Config) {
				c.SetAge = tc.setAge
				c.Now = func() time.Time { return now }
			})
			st.setMedia("aged.m4s", &Object{Data: []byte("x"), ContentType: testMediaType, Created: tc.created})
			st.setMultivariant(&Object{Data: []byte(testMultivariant), ContentType: "application/vnd.apple.mpegurl", Created: tc.created})
			for _, target := range []string{"/live/radio/aged.m4s", multivariantURL} {
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					resp := serve(h, method, target)
					require.Equal(t, http.StatusOK, resp.StatusCode)
					require.Equal(t, tc.want, resp.Header.Get("Age"), "%s %s", method, target)
				}
			}
		})
	}
}

// hls.js reads Age on the media playlist response to find the live edge on
// join (hls.js #6076, LLHLS.md §4).
func TestHandlerSetAgeMediaPlaylist(t *testing.T) {
	h, _ := newLiveHandler(t, func(c *Config) { c.SetAge = true })
	resp := serve(h, http.MethodGet, playlistPath)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	age, err := strconv.Atoi(resp.Header.Get("Age"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, age, 0)
}

// The same rules over a real connection: the request context ends when the
// client goes away, and a publish releases a held request.
func TestHandlerRealServer(t *testing.T) {
	newServer := func(t *testing.T) (*httptest.Server, *fakeStream, chan struct{}, chan struct{}) {
		h, st := newLiveHandler(t)
		entered := make(chan struct{}, 16)
		returned := make(chan struct{}, 16)
		st.onPlaylist = func(string) { entered <- struct{}{} }
		mux := http.NewServeMux()
		h.Register(mux)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() { returned <- struct{}{} }()
			mux.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv, st, entered, returned
	}
	const bound = 10 * time.Second

	t.Run("held request released by a publish", func(t *testing.T) {
		srv, st, entered, _ := newServer(t)
		type result struct {
			resp *http.Response
			err  error
		}
		res := make(chan result, 1)
		go func() {
			resp, err := srv.Client().Get(srv.URL + playlistPath + "?_HLS_msn=103&_HLS_part=2")
			res <- result{resp, err}
		}()
		select {
		case <-entered:
		case <-time.After(bound):
			t.Fatal("request never reached the handler")
		}
		next := serverPL(3)
		st.publish(next)
		select {
		case r := <-res:
			require.NoError(t, r.err)
			defer r.resp.Body.Close()
			require.Equal(t, http.StatusOK, r.resp.StatusCode)
			require.Equal(t, maxAge(6*testTD), r.resp.Header.Get("Cache-Control"))
			require.Equal(t, mustRender(t, next, false), body(t, r.resp))
		case <-time.After(bound):
			t.Fatal("held request not released by the publish")
		}
	})

	t.Run("client goes away", func(t *testing.T) {
		srv, _, entered, returned := newServer(t)
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+playlistPath+"?_HLS_msn=104", nil)
			resp, err := srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		select {
		case <-entered:
		case <-time.After(bound):
			t.Fatal("request never reached the handler")
		}
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
		select {
		case <-returned:
		case <-time.After(bound):
			t.Fatal("handler still holding a request whose client left")
		}
	})

	t.Run("gzip over the wire", func(t *testing.T) {
		srv, _, _, _ := newServer(t)
		req, err := http.NewRequest(http.MethodGet, srv.URL+playlistPath, nil)
		require.NoError(t, err)
		req.Header.Set("Accept-Encoding", "gzip") // set by hand: the transport leaves the body compressed
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, mustRender(t, serverPL(2), false), string(gunzip(t, raw)))
	})

	t.Run("path traversal is cleaned before it reaches the handler", func(t *testing.T) {
		srv, _, _, _ := newServer(t)
		client := srv.Client()
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := client.Get(srv.URL + "/live/radio/../../etc/passwd")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.NotEqual(t, http.StatusOK, resp.StatusCode)
	})
}

func BenchmarkHandlerPlaylist(b *testing.B) {
	st := newFakeStream(serverPL(2))
	h, err := NewHandler(Config{Catalog: fakeCatalog{testStreamName: st}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, playlistPath+"?_HLS_msn=103&_HLS_part=1", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
