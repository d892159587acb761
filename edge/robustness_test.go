package edge

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/config"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/playlists/" + name)
	require.NoError(t, err)
	return b
}

// fakeUpstream serves one broadcast, "fake", whose media playlist answer
// is chosen per request by playlist (nil: the recorded origin playlist).
// Media files are answered with a few bytes.
func fakeUpstream(t testing.TB, playlist func(r *http.Request, n int64) (int, []byte)) http.Handler {
	mv := readTestdata(t, "origin_multivariant.m3u8")
	live := readTestdata(t, "origin_live_ll.m3u8")
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/live/fake/index.m3u8":
			w.Write(mv)
		case r.URL.Path == "/live/fake/audio.m3u8":
			code, body := http.StatusOK, live
			if playlist != nil {
				code, body = playlist(r, n.Add(1))
			}
			w.WriteHeader(code)
			w.Write(body)
		case strings.HasPrefix(r.URL.Path, "/live/fake/") && !strings.HasSuffix(r.URL.Path, ".m3u8"):
			w.Write([]byte("media"))
		default:
			http.NotFound(w, r)
		}
	})
}

// TestTrackerPacesMisbehavingUpstreams: whatever an upstream answers, the
// tracker following a playlist must not turn into a hot loop against it.
// A well-behaved LL upstream costs about one playlist request per part
// (5 a second here); the bound allows ten times that.
func TestTrackerPacesMisbehavingUpstreams(t *testing.T) {
	t.Parallel()
	live := readTestdata(t, "origin_live_ll.m3u8")
	const (
		window  = 2 * time.Second
		maxPerS = 50
	)
	tests := []struct {
		name     string
		playlist func(r *http.Request, n int64) (int, []byte)
	}{
		{
			// A server (or a cache in front of it) that advertises parts but
			// answers blocking reloads at once with the same playlist.
			name:     "ignores blocking directives",
			playlist: func(*http.Request, int64) (int, []byte) { return http.StatusOK, live },
		},
		{
			// A load balancer whose backends are gone.
			name: "503 at once to blocking reloads",
			playlist: func(r *http.Request, _ int64) (int, []byte) {
				if strings.Contains(r.URL.RawQuery, "_HLS_msn=") {
					return http.StatusServiceUnavailable, []byte("no backend")
				}
				return http.StatusOK, live
			},
		},
		{
			name: "malformed playlist after the first",
			playlist: func(_ *http.Request, n int64) (int, []byte) {
				if n == 1 {
					return http.StatusOK, live
				}
				return http.StatusOK, []byte("<html>oops</html>")
			},
		},
		{
			name: "malformed playlist from the start",
			playlist: func(*http.Request, int64) (int, []byte) {
				return http.StatusOK, []byte("#EXTM3U\n#EXT-X-TARGETDURATION:x\n")
			},
		},
		{
			name: "404 after the first",
			playlist: func(_ *http.Request, n int64) (int, []byte) {
				if n == 1 {
					return http.StatusOK, live
				}
				return http.StatusNotFound, []byte("gone")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, fakeUpstream(t, tt.playlist), nil)
			e := startEdge(t, testEdgeConfig(up.URL))
			res, err := http.Get(e.URL + "/live/fake/audio.m3u8")
			require.NoError(t, err)
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			// The tracker now follows the playlist until it idles (30 s).
			playlists := func() int {
				return up.log.countWhere(func(r upstreamRequest) bool { return strings.HasSuffix(r.path, "/audio.m3u8") })
			}
			before := playlists()
			time.Sleep(window)
			n := playlists() - before
			t.Logf("%d playlist requests upstream in %v", n, window)
			require.LessOrEqual(t, n, int(window.Seconds()*maxPerS), "the tracker hammers its upstream")
		})
	}
}

// TestEdgeForgetsUnknownPlaylists: requests for playlists a live broadcast
// does not have must not pile up state in the edge.
func TestEdgeForgetsUnknownPlaylists(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, fakeUpstream(t, nil), nil)
	cfg := testEdgeConfig(up.URL)
	cfg.NegativeTTL = config.Duration(200 * time.Millisecond)
	cfg.TrackerIdle = config.Duration(500 * time.Millisecond)
	e := startEdge(t, cfg)
	client := newClient(1)
	defer client.CloseIdleConnections()
	for i := range 200 {
		res, err := client.Get(fmt.Sprintf("%s/live/fake/nope-%d.m3u8", e.URL, i))
		require.NoError(t, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusNotFound, res.StatusCode)
	}
	trackers := func() int {
		e.mu.Lock()
		s := e.streams["fake"]
		e.mu.Unlock()
		if s == nil {
			return 0
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.trackers)
	}
	deadline := time.Now().Add(3 * time.Second)
	for trackers() > 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.LessOrEqual(t, trackers(), 1, "failed trackers are kept")
}

// TestMetricsLabelsOnlyKnownBroadcasts: the per-broadcast listener gauge
// must not grow a series for every name a client makes up.
func TestMetricsLabelsOnlyKnownBroadcasts(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, fakeUpstream(t, nil), nil)
	e := startEdge(t, testEdgeConfig(up.URL))
	client := newClient(1)
	defer client.CloseIdleConnections()
	for i := range 50 {
		res, err := client.Get(fmt.Sprintf("%s/live/made-up-%d/audio.m3u8", e.URL, i))
		require.NoError(t, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusNotFound, res.StatusCode)
	}
	require.NotContains(t, metricsText(t, e.Edge), `broadcast="made-up-`)
}
