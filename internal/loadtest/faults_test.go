package loadtest

import (
	"context"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/evloop"
)

// runAgainst runs a short load test and returns its report.
func runAgainst(t *testing.T, url string, listeners int, d time.Duration, mix Mix) *Report {
	t.Helper()
	rep, err := Run(context.Background(), Config{URL: url, Listeners: listeners, Duration: d, Mix: mix})
	require.NoError(t, err)
	if testing.Verbose() {
		rep.WriteText(os.Stdout)
	} else {
		rep.WriteText(io.Discard)
	}
	return rep
}

var (
	onlyLL      = Mix{LL: 1}
	llAndHint   = Mix{LL: 0.5, Hint: 0.5}
	allBehavior = Mix{LL: 1.0 / 3, Hint: 1.0 / 3, Legacy: 1.0 / 3}
)

func TestFaultServerBaselineIsClean(t *testing.T) {
	t.Parallel()
	f := (&faultServer{}).serve(t)
	rep := runAgainst(t, f.url+"/index.m3u8", 9, 3*time.Second, allBehavior)
	require.Zero(t, rep.Total.ErrorsTotal, rep.Total.Errors)
	require.Zero(t, rep.Total.Stalls)
	require.EqualValues(t, 9, rep.Total.Playing)
	for _, name := range []string{"ll", "hint"} {
		g := rep.Behaviours[name]
		require.NotNil(t, g.PartLatency, name)
		require.Less(t, g.PartLatency.P99, 250.0, name)
	}
	require.NotNil(t, rep.Behaviours["legacy"].SegmentLatency)
}

// The listeners' two models, event loops (the default on Linux) and a
// goroutine each, see the same clean stream.
func TestBothListenerModelsAreClean(t *testing.T) {
	t.Parallel()
	f := (&faultServer{}).serve(t)
	for _, goroutines := range []bool{false, true} {
		rep, err := Run(context.Background(), Config{URL: f.url + "/media.m3u8", Listeners: 9,
			Duration: 2500 * time.Millisecond, Mix: allBehavior, Goroutines: goroutines})
		require.NoError(t, err)
		require.Zero(t, rep.Total.ErrorsTotal, "goroutines %v: %v", goroutines, rep.Total.Errors)
		require.Zero(t, rep.Total.Stalls, "goroutines %v", goroutines)
		require.EqualValues(t, 9, rep.Total.Playing, "goroutines %v", goroutines)
		require.Positive(t, rep.Behaviours["ll"].Requests["part"], "goroutines %v", goroutines)
		require.Positive(t, rep.Behaviours["legacy"].Requests["segment"], "goroutines %v", goroutines)
		require.Positive(t, rep.Behaviours["hint"].Requests["hinted_part"], "goroutines %v", goroutines)
		if goroutines || !evloop.Available {
			require.Zero(t, rep.Generator.EventLoops)
		} else {
			require.Equal(t, runtime.GOMAXPROCS(0), rep.Generator.EventLoops)
		}
	}
}

func TestDelayedPartsRaiseLatency(t *testing.T) {
	t.Parallel()
	base := (&faultServer{}).serve(t)
	slow := (&faultServer{delay: 300 * time.Millisecond}).serve(t)
	var baseRep, slowRep *Report
	done := make(chan struct{})
	go func() {
		defer close(done)
		baseRep = runAgainst(t, base.url+"/media.m3u8", 10, 2500*time.Millisecond, llAndHint)
	}()
	slowRep = runAgainst(t, slow.url+"/media.m3u8", 10, 2500*time.Millisecond, llAndHint)
	<-done
	require.NotNil(t, baseRep.Total.PartLatency)
	require.NotNil(t, slowRep.Total.PartLatency)
	rise := slowRep.Total.PartLatency.P50 - baseRep.Total.PartLatency.P50
	require.InDelta(t, 300, rise, 60, "p50 %v ms vs baseline %v ms", slowRep.Total.PartLatency.P50, baseRep.Total.PartLatency.P50)
	require.Zero(t, slowRep.Total.ErrorsTotal, slowRep.Total.Errors)
}

func TestDroppedPartIsCounted(t *testing.T) {
	t.Parallel()
	f := (&faultServer{dropEvery: 10}).serve(t)
	rep := runAgainst(t, f.url+"/media.m3u8", 10, 2500*time.Millisecond, llAndHint)
	require.Positive(t, rep.Total.Errors["http_404"], rep.Total.Errors)
	require.Positive(t, rep.Total.Stalls, "a missing part is a hole in the audio")
	require.Positive(t, rep.Total.StalledS)
}

func TestServiceUnavailableIsCountedByStatus(t *testing.T) {
	t.Parallel()
	f := (&faultServer{blockingStatus: 503}).serve(t)
	rep := runAgainst(t, f.url+"/media.m3u8", 5, 2*time.Second, onlyLL)
	require.Positive(t, rep.Total.Errors["http_503"], rep.Total.Errors)
	require.Equal(t, rep.Total.Errors["http_503"], rep.Total.ErrorsTotal)
}

func TestMalformedPlaylistIsCounted(t *testing.T) {
	t.Parallel()
	f := (&faultServer{malformedEvery: 3}).serve(t)
	rep := runAgainst(t, f.url+"/media.m3u8", 5, 2*time.Second, onlyLL)
	require.Positive(t, rep.Total.Errors["malformed_playlist"], rep.Total.Errors)
}

func TestStalledStreamStalls(t *testing.T) {
	t.Parallel()
	f := (&faultServer{stallAfter: 500 * time.Millisecond, holdTimeout: 500 * time.Millisecond}).serve(t)
	rep := runAgainst(t, f.url+"/media.m3u8", 6, 2500*time.Millisecond, allBehavior)
	require.Positive(t, rep.Total.Stalls)
	require.Greater(t, rep.Total.StalledS, 1.0)
	require.Greater(t, rep.Total.StallRatio, 0.1)
}

func TestEndedBroadcastStopsListenersWithoutStalls(t *testing.T) {
	t.Parallel()
	f := (&faultServer{endAfter: 700 * time.Millisecond}).serve(t)
	rep := runAgainst(t, f.url+"/media.m3u8", 6, 2*time.Second, allBehavior)
	require.EqualValues(t, 6, rep.Total.Ended)
	require.Zero(t, rep.Total.ErrorsTotal, rep.Total.Errors)
	require.Zero(t, rep.Total.Stalls)
	require.Less(t, rep.Total.ListenedS, 6*1.5)
}

func TestRampSpreadsTheJoins(t *testing.T) {
	t.Parallel()
	f := (&faultServer{}).serve(t)
	rep := runAgainst(t, f.url+"/media.m3u8", 10, 2*time.Second, llAndHint)
	require.EqualValues(t, 10, rep.Total.Listeners)
	ramped, err := Run(context.Background(), Config{URL: f.url + "/media.m3u8", Listeners: 10,
		Duration: 2 * time.Second, Ramp: time.Second, Mix: llAndHint})
	require.NoError(t, err)
	require.EqualValues(t, 10, ramped.Total.Playing)
	require.EqualValues(t, 10, ramped.Total.TimeToFirstAudio.Count)
	// Listeners that joined later listened for less time.
	require.Less(t, ramped.Total.ListenedS, rep.Total.ListenedS-3)
	require.Zero(t, ramped.Total.ErrorsTotal)
}

func TestEarlyAnswersToBlockingRequestsAreCounted(t *testing.T) {
	t.Parallel()
	f := (&faultServer{answerEarly: true}).serve(t)
	rep := runAgainst(t, f.url+"/media.m3u8", 4, 2*time.Second, llAndHint)
	holds := rep.Total.Errors["hold_unsatisfied"]
	require.Positive(t, holds, rep.Total.Errors)
	// Each one is followed by a pause, not a tight loop.
	require.Less(t, holds, int64(4*2*20))
	require.Positive(t, rep.Total.Playing)
}

func TestBadRequestMakesListenersRejoin(t *testing.T) {
	t.Parallel()
	f := (&faultServer{blockingStatus: 400}).serve(t)
	rep := runAgainst(t, f.url+"/media.m3u8", 3, 2*time.Second, onlyLL)
	require.Positive(t, rep.Total.Errors["http_400"])
	require.Positive(t, rep.Total.Resyncs)
	require.Greater(t, rep.Total.Requests["playlist"], int64(3))
}
