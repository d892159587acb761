package loadtest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/testorigin"
)

// startOrigin runs a real amphi origin (low preset) on 127.0.0.1:0 with
// broadcast "live" fed by synthetic AAC frames in real time, and returns the
// multivariant playlist URL. Everything stops when the test ends.
func startOrigin(t *testing.T) string {
	t.Helper()
	return testorigin.Start(t, "low", "live") + "/live/live/index.m3u8"
}

// waitSegments waits until the broadcast's media playlist lists n complete
// segments.
func waitSegments(t *testing.T, mediaURL string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(mediaURL)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK && strings.Count(string(body), "#EXTINF") >= n {
			return
		}
		require.True(t, time.Now().Before(deadline), "origin has fewer than %d segments after 15s", n)
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAgainstOrigin runs each behaviour against a real origin and checks
// that the figures are sane: everyone plays, nothing fails or stalls, parts
// arrive well within a second.
func TestAgainstOrigin(t *testing.T) {
	t.Parallel()
	url := startOrigin(t)
	media := strings.TrimSuffix(url, "index.m3u8") + "audio.m3u8"
	for _, tc := range []struct {
		name     string
		mix      Mix
		segments int // wait for this many segments: legacy starts HOLD-BACK (3 s) behind live
		kinds    []string
	}{
		{"ll", Mix{LL: 1}, 1, []string{"blocking_playlist", "part", "init", "multivariant"}},
		{"hint", Mix{Hint: 1}, 1, []string{"blocking_playlist", "hinted_part", "init"}},
		{"legacy", Mix{Legacy: 1}, 4, []string{"playlist", "segment", "init"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			waitSegments(t, media, tc.segments)
			rep := runAgainst(t, url, 8, 3500*time.Millisecond, tc.mix)
			t.Cleanup(func() {
				if t.Failed() {
					var b strings.Builder
					rep.WriteText(&b)
					t.Log("\n" + b.String())
				}
			})
			g := rep.Behaviours[tc.name]
			require.NotNil(t, g)
			require.EqualValues(t, 8, g.Listeners)
			require.EqualValues(t, 8, g.Playing)
			require.Zero(t, g.ErrorsTotal, g.Errors)
			require.Zero(t, g.Stalls)
			require.Zero(t, g.StalledS)
			for _, k := range tc.kinds {
				require.Positive(t, g.Requests[k], k)
			}
			require.Less(t, g.TimeToFirstAudio.Max, 2000.0)
			if tc.name == "legacy" {
				require.NotNil(t, g.SegmentLatency)
				require.Less(t, g.SegmentLatency.Max, 2500.0)
				require.Zero(t, g.Requests["blocking_playlist"])
				return
			}
			require.NotNil(t, g.PartLatency)
			require.Greater(t, g.PartLatency.Count, int64(8*10))
			// No ramp: every part counts as after it too.
			require.Equal(t, g.PartLatency, g.PartLatencyAfterRamp)
			require.Less(t, g.PartLatency.P99, 1000.0)
			require.Greater(t, g.PartLatency.P50, -100.0)
			require.Less(t, g.PlaylistWait.P50, 400.0)
			require.True(t, rep.Stream.ProgramDateTime)
			require.Positive(t, rep.Stream.CanSkipUntilS)
		})
	}
}

// TestLatencyAfterRamp: parts held while listeners still join are left out
// of the after-the-ramp latency, and the rest are in it.
func TestLatencyAfterRamp(t *testing.T) {
	t.Parallel()
	url := startOrigin(t)
	waitSegments(t, strings.TrimSuffix(url, "index.m3u8")+"audio.m3u8", 1)
	rep, err := Run(context.Background(), Config{URL: url, Listeners: 6, Duration: 4 * time.Second,
		Ramp: 2 * time.Second, Mix: Mix{LL: 1}})
	require.NoError(t, err)
	all, after := rep.Total.PartLatency, rep.Total.PartLatencyAfterRamp
	require.NotNil(t, all)
	require.NotNil(t, after)
	// Half the run is ramp, and the early joiners get parts in it.
	require.Positive(t, after.Count)
	require.Less(t, after.Count, all.Count)
	require.LessOrEqual(t, after.Max, all.Max)
	require.Nil(t, rep.Total.SegmentLatencyAfterRamp)
	var b strings.Builder
	rep.WriteText(&b)
	require.Contains(t, b.String(), "after the ramp")
}
