package edge

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/llhls"
)

// swapHandler serves through whichever handler was set last.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }
func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// edgePlaylist GETs the plain media playlist from the edge.
func edgePlaylist(t *testing.T, client *http.Client, base, name string) (int, *llhls.Playlist) {
	t.Helper()
	res, err := client.Get(base + "/live/" + name + "/audio.m3u8")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, nil
	}
	pl, err := llhls.ParsePlaylist(b)
	require.NoError(t, err)
	return res.StatusCode, pl
}

// prefixOf is the session prefix of a playlist's part URIs ("6b078f08").
func prefixOf(pl *llhls.Playlist) string {
	ps := partsOf(pl)
	if len(ps) == 0 {
		return ""
	}
	p, _, _ := strings.Cut(ps[len(ps)-1].uri, "-")
	return p
}

// TestEdgeBroadcastRestart: when the broadcast behind a playlist starts a
// new session (new URIs, numbering from 0), an edge that listeners keep
// asking must move to it within a few target durations, not serve the old
// session for as long as anyone listens.
func TestEdgeBroadcastRestart(t *testing.T) {
	t.Parallel()
	// The ended playlist is cacheable for 6 target durations (the origin's
	// Cache-Control); allow that plus slack.
	const within = 6*lowTD + 3*time.Second

	// waitForSession polls the edge (which keeps its tracker busy) until it
	// serves a live playlist of session prefix, or within passes.
	waitForSession := func(t *testing.T, client *http.Client, base, name, prefix string) (time.Duration, string) {
		start := time.Now()
		var last string
		for time.Since(start) < within {
			code, pl := edgePlaylist(t, client, base, name)
			if pl != nil {
				last = prefixOf(pl)
				if pl.Ended {
					last += " (ended)"
				}
				if !pl.Ended && prefixOf(pl) == prefix {
					return time.Since(start), ""
				}
			} else {
				last = http.StatusText(code)
			}
			time.Sleep(200 * time.Millisecond)
		}
		return 0, last
	}

	t.Run("ended then published again", func(t *testing.T) {
		t.Parallel()
		srv := startTestOrigin(t, "low")
		end := publish(t, srv, "again")
		up := startUpstream(t, srv.Handler(), nil)
		e := startEdge(t, testEdgeConfig(up.URL))
		client := newClient(1)
		defer client.CloseIdleConnections()

		code, pl := edgePlaylist(t, client, e.URL, "again")
		require.Equal(t, http.StatusOK, code)
		old := prefixOf(pl)
		end()
		deadline := time.Now().Add(5 * time.Second)
		for pl == nil || !pl.Ended {
			require.True(t, time.Now().Before(deadline), "the edge never showed the ended playlist")
			time.Sleep(100 * time.Millisecond)
			_, pl = edgePlaylist(t, client, e.URL, "again")
		}

		publish(t, srv, "again")
		now := directPlaylist(t, srv.Handler(), "again")
		require.NotEqual(t, old, prefixOf(now))
		took, last := waitForSession(t, client, e.URL, "again", prefixOf(now))
		require.Empty(t, last, "after %v the edge still serves %s, the origin session %s", within, last, prefixOf(now))
		t.Logf("the edge served the new session %v after it started", took.Round(time.Millisecond))
	})

	t.Run("origin replaced by one numbering from 0", func(t *testing.T) {
		t.Parallel()
		// The first upstream is an origin 1000 segments into the broadcast
		// (a recorded playlist that never moves: blocking reloads are held
		// for a second, then answered 503).
		frozen := strings.Replace(string(readTestdata(t, "origin_live_ll.m3u8")),
			"#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-MEDIA-SEQUENCE:1000", 1)
		old := fakeUpstream(t, func(r *http.Request, _ int64) (int, []byte) {
			if strings.Contains(r.URL.RawQuery, "_HLS_msn=") {
				select {
				case <-r.Context().Done():
				case <-time.After(time.Second):
				}
				return http.StatusServiceUnavailable, nil
			}
			return http.StatusOK, []byte(frozen)
		})
		var sw swapHandler
		sw.set(http.StripPrefix("/live/moved/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.URL.Path = "/live/fake/" + r.URL.Path
			old.ServeHTTP(w, r)
		})))
		up := startUpstream(t, &sw, nil)
		e := startEdge(t, testEdgeConfig(up.URL))
		client := newClient(1)
		defer client.CloseIdleConnections()
		code, pl := edgePlaylist(t, client, e.URL, "moved")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, uint64(1000), pl.MediaSequence)

		// The origin restarts: a new session numbering from 0.
		srv2 := startTestOrigin(t, "low")
		publish(t, srv2, "moved")
		sw.set(srv2.Handler())
		took, last := waitForSession(t, client, e.URL, "moved", prefixOf(directPlaylist(t, srv2.Handler(), "moved")))
		if last != "" {
			for _, r := range up.log.snapshot() {
				if r.at.After(time.Now().Add(-3 * time.Second)) {
					t.Logf("upstream: %s %s?%s -> %d", r.at.Format("05.000"), r.path, r.query, r.code.Load())
				}
			}
		}
		require.Empty(t, last, "after %v the edge still serves session %s", within, last)
		t.Logf("the edge served the restarted origin %v after the switch", took.Round(time.Millisecond))
	})
}
