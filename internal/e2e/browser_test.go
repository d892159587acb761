package e2e

import (
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/origin"
)

// joinAfterSegments is how many complete segments a broadcast has before
// the tests' listener joins: joining a younger broadcast stalls hls.js (see
// TestBrowserJoinsAtBroadcastStart), and most listeners join a broadcast
// that has been running for a while.
const joinAfterSegments = 2

// TestBrowserPlaysDemoThroughEdge plays the demo broadcast, origin → amphi
// edge → headless Chromium with hls.js in low-latency mode, for 30 s with
// each segmenter preset, then ends the broadcast. The playhead must advance
// steadily with no stall and no fatal hls.js error, and the page must show
// "ended" within three target durations of the end.
func TestBrowserPlaysDemoThroughEdge(t *testing.T) {
	needBrowser(t)
	hlsjs := serveHLSJS(t)
	const listen = 30 * time.Second

	for _, preset := range []string{"low", "balanced", "scale"} {
		t.Run(preset, func(t *testing.T) {
			p := newPlayer(t) // Chromium starts while the broadcast warms up
			srv, originURL := startOrigin(t, preset, hlsjs, nil)
			d := startDemo(t, srv, "demo")
			edgeURL := startEdge(t, originURL, hlsjs)
			waitSegments(t, mediaPlaylistURL(t, originURL, "demo"), joinAfterSegments, 20*time.Second)

			p.open(edgeURL + "/live/demo/")
			started := p.play()
			samples := p.sampleFor(listen)

			requireSteadyPlayback(t, samples, listen-5*time.Second)
			log := p.probe()
			requireNoStall(t, log, started)
			require.Empty(t, log.fatal(), "hls.js had fatal errors")
			require.Equal(t, 1, log.HLSInstances, "the page recreated hls.js: %v", log.HLSErrors)
			logNonFatal(t, log)
			if log.NativeHLS != nil && *log.NativeHLS != "" {
				t.Logf("chromium reports native HLS (canPlayType %q); the probe hid it to force hls.js", *log.NativeHLS)
			}

			p50, maxL, n := latencyStats(samples)
			require.Positive(t, n, "hls.js never reported a latency")
			t.Logf("preset %s: hls.js latency p50 %.1fs max %.1fs (%d samples; hls.js target %.2fs)",
				preset, p50, maxL, n, samples[len(samples)-1].TargetLatency)

			// The end of the broadcast: ENDLIST reaches the page through the
			// edge, and hls.js stops without an error.
			require.NoError(t, ignoreCanceled(d.stop()))
			td := time.Duration(d.sess.Segmenter().TargetDuration()) * time.Second
			end := time.Now()
			d.sess.End()
			p.waitFor(`state "ended"`, 3*td, func(s sample) bool { return s.State == "ended" })
			t.Logf("preset %s: page showed ended %v after the broadcast ended (target duration %v)",
				preset, time.Since(end).Round(100*time.Millisecond), td)
			time.Sleep(time.Second) // whatever hls.js does after the end, it does now
			s := p.sample()
			require.Equal(t, "ended", s.State, "the page left ended: %s", s.Message)
			require.Empty(t, p.probe().fatal(), "hls.js had fatal errors after the end")
		})
	}
}

// TestBrowserKeepsPlayingAcrossPublisherRestart kills an ffmpeg publisher of
// a managed broadcast while Chromium listens through the edge, restarts it
// within 2 s, and expects the playlist to carry on after an
// EXT-X-DISCONTINUITY with the browser still playing.
func TestBrowserKeepsPlayingAcrossPublisherRestart(t *testing.T) {
	needBrowser(t)
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skipf("ffmpeg is not installed: %v", err)
	}
	hlsjs := serveHLSJS(t)
	srv, originURL := startOrigin(t, "balanced", hlsjs, func(c *origin.Config) {
		c.Ingest.Open = false
		c.API.Token = "e2e-token"
	})
	key, err := srv.CreateBroadcast("talk")
	require.NoError(t, err)
	ingest := originURL + "/ingest/talk?key=" + url.QueryEscape(key)

	p := newPlayer(t)
	first := startPublisher(t, ingest)
	waitBroadcastState(t, srv, "talk", origin.StateLive, 10*time.Second)
	edgeURL := startEdge(t, originURL, hlsjs)
	waitSegments(t, mediaPlaylistURL(t, originURL, "talk"), joinAfterSegments, 20*time.Second)

	p.open(edgeURL + "/live/talk/")
	started := p.play()
	before := p.sampleFor(10 * time.Second)
	advance := before[len(before)-1].CurrentTime - before[0].CurrentTime
	require.GreaterOrEqual(t, advance, 5.0, "the playhead advanced %.1fs in the 10s before the restart", advance)

	// The publisher drops and comes back.
	killed := time.Now()
	first.kill(t)
	waitBroadcastState(t, srv, "talk", origin.StateReconnecting, 2*time.Second)
	startPublisher(t, ingest)
	require.Less(t, time.Since(killed), 2*time.Second, "the publisher took too long to restart")
	waitBroadcastState(t, srv, "talk", origin.StateLive, 5*time.Second)

	after := p.sampleFor(12 * time.Second)
	advance = after[len(after)-1].CurrentTime - after[0].CurrentTime
	require.GreaterOrEqual(t, advance, 8.0, "the playhead advanced %.1fs in the 12s after the restart: %+v", advance, after)
	log := p.probe()
	require.Empty(t, log.fatal(), "hls.js had fatal errors across the restart")
	logNonFatal(t, log)
	if st, blips := log.stalls(started); len(st)+len(blips) > 0 {
		t.Logf("stalls across the restart (allowed): %v", append(st, blips...))
	}
	t.Logf("playhead advanced %.1fs in the 12s after the publisher restart; state %q",
		advance, after[len(after)-1].State)

	playlist := get(t, mediaPlaylistURL(t, edgeURL, "talk"))
	require.Contains(t, playlist, "#EXT-X-DISCONTINUITY\n", "the edge's playlist has no discontinuity:\n%s", playlist)
}

// TestBrowserJoinsAtBroadcastStart joins a broadcast as soon as its
// playlist answers (one complete segment) and listens for 12 s. It is a
// known failure, so it runs only with AMPHI_E2E_JOIN_AT_START=1: with the
// balanced preset, hls.js 1.7.4 loads the first segment's parts, then
// reloads its last part in a tight loop (Chromium's buffered end is 1 µs
// short of the part's end: 48 kHz AAC frames are not whole microseconds)
// until the second segment completes, and playback stalls for 1.5–3 s at
// the first segment boundary.
func TestBrowserJoinsAtBroadcastStart(t *testing.T) {
	if os.Getenv("AMPHI_E2E_JOIN_AT_START") == "" {
		t.Skip("known stall when joining a broadcast in its first segment; set AMPHI_E2E_JOIN_AT_START=1 to run")
	}
	needBrowser(t)
	hlsjs := serveHLSJS(t)
	p := newPlayer(t)
	srv, originURL := startOrigin(t, "balanced", hlsjs, nil)
	startDemo(t, srv, "demo")
	edgeURL := startEdge(t, originURL, hlsjs)
	waitSegments(t, mediaPlaylistURL(t, originURL, "demo"), 1, 10*time.Second)

	p.open(edgeURL + "/live/demo/")
	started := p.play()
	samples := p.sampleFor(12 * time.Second)
	log := p.probe()
	requireNoStall(t, log, started)
	require.Empty(t, log.fatal(), "hls.js had fatal errors")
	requireSteadyPlayback(t, samples, 10*time.Second)
}

// requireSteadyPlayback checks that the playhead moved forward between every
// two samples (no freeze, no jump back), that the player stayed "live", and
// that it advanced at least minAdvance in all.
func requireSteadyPlayback(t *testing.T, samples []sample, minAdvance time.Duration) {
	t.Helper()
	require.GreaterOrEqual(t, len(samples), 2)
	for i := 1; i < len(samples); i++ {
		prev, cur := samples[i-1], samples[i]
		require.Greater(t, cur.CurrentTime, prev.CurrentTime,
			"the playhead did not advance between %v and %v (%.2f → %.2f, state %q %s)",
			prev.At.Round(time.Millisecond), cur.At.Round(time.Millisecond), prev.CurrentTime, cur.CurrentTime, cur.State, cur.Message)
		require.Equal(t, "live", cur.State, "at %v: %s", cur.At.Round(time.Millisecond), cur.Message)
	}
	advance := samples[len(samples)-1].CurrentTime - samples[0].CurrentTime
	require.GreaterOrEqual(t, advance, minAdvance.Seconds(),
		"the playhead advanced %.1fs over %v", advance, samples[len(samples)-1].At.Round(time.Millisecond))
}

// requireNoStall fails t if playback stalled after page time started, and
// logs the renderer blips that are not counted (see blipLimit).
func requireNoStall(t *testing.T, log probeLog, started float64) {
	t.Helper()
	stalls, blips := log.stalls(started)
	if len(blips) > 0 {
		t.Logf("audio renderer blips shorter than %v (not counted as stalls): %v", blipLimit, blips)
	}
	require.Empty(t, stalls, "the playback stalled after it started")
}

// logNonFatal logs the non-fatal hls.js errors, which hls.js recovers from
// by itself but which are worth seeing.
func logNonFatal(t *testing.T, log probeLog) {
	t.Helper()
	var lines []string
	for _, e := range log.HLSErrors {
		if !e.Fatal {
			lines = append(lines, e.String())
		}
	}
	if len(lines) > 0 {
		t.Logf("non-fatal hls.js errors:\n%s", strings.Join(lines, "\n"))
	}
}

// waitBroadcastState polls the origin until broadcast name is in state.
func waitBroadcastState(t *testing.T, srv *origin.Server, name, state string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st, err := srv.Status(name)
		require.NoError(t, err)
		if st.State == state {
			return
		}
		if time.Now().After(deadline) {
			require.FailNow(t, "broadcast "+name+" never got to "+state, "within %v; it is %q", limit, st.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
