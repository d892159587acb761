package loadtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const ms = int64(time.Millisecond)

func TestPlayerBuffer(t *testing.T) {
	// Media time and wall time share an origin here: the playhead starts
	// 600 ms behind a live edge at 1000.
	type step struct {
		add  bool
		at   int64 // wall, ms
		s, e int64 // media, ms (add)
	}
	for _, tc := range []struct {
		name    string
		steps   []step
		end     int64
		stalls  int64
		stalled time.Duration
	}{
		{
			name: "parts keep coming: no stall",
			steps: []step{
				{true, 1000, 400, 1000},
				{true, 1200, 1000, 1200}, {true, 1400, 1200, 1400}, {true, 1600, 1400, 1600},
			},
			end: 1700,
		},
		{
			name: "source stops: the buffer runs dry and stays dry",
			steps: []step{
				{true, 1000, 400, 1000},
			},
			end:     2000,
			stalls:  1,
			stalled: 400 * time.Millisecond, // dry from 1600
		},
		{
			name: "a late part freezes playback until it arrives",
			steps: []step{
				{true, 1000, 400, 1000},
				{true, 1750, 1000, 1200}, // dry at 1600, resumes at 1750
				{true, 1760, 1200, 1400},
			},
			end:     1800,
			stalls:  1,
			stalled: 150 * time.Millisecond,
		},
		{
			name: "a missing part plays as a hole as long as the part",
			steps: []step{
				{true, 1000, 400, 1000},
				{true, 1400, 1200, 1400}, // 1000-1200 never comes
				{true, 1600, 1400, 1600},
			},
			end:     1900,
			stalls:  1,
			stalled: 200 * time.Millisecond,
		},
		{
			name: "after a freeze the player jumps to what arrived",
			steps: []step{
				{true, 1000, 400, 1000},
				{true, 1900, 1200, 1400}, // dry at 1600; 1000-1200 never comes
				{true, 1950, 1400, 1600},
			},
			end:     2100,
			stalls:  1,
			stalled: 300 * time.Millisecond, // frozen 1600..1900, then plays 1200..1500
		},
		{
			name: "edges a millisecond apart are contiguous",
			steps: []step{
				{true, 1000, 400, 1000},
				{true, 1100, 1001, 1200},
			},
			end: 1500,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b playerBuffer
			for i, s := range tc.steps {
				b.add(s.at*ms, s.s*ms, s.e*ms)
				if i == 0 {
					b.start(s.at*ms, s.s*ms)
				}
			}
			b.advance(tc.end * ms)
			require.Equal(t, tc.stalls, b.stalls)
			require.Equal(t, tc.stalled, b.stalled)
		})
	}
}

func TestPlayerBufferAhead(t *testing.T) {
	var b playerBuffer
	b.add(1000*ms, 400*ms, 1000*ms)
	b.start(1000*ms, 400*ms)
	require.Equal(t, 600*time.Millisecond, b.ahead())
	b.advance(1250 * ms)
	require.Equal(t, 350*time.Millisecond, b.ahead())
	b.add(1300*ms, 1000*ms, 1200*ms)
	require.Equal(t, 500*time.Millisecond, b.ahead())
}

func TestPlayerBufferManyHoles(t *testing.T) {
	var b playerBuffer
	b.add(0, 0, 100*ms)
	b.start(0, 0)
	for i := int64(1); i < 3*maxRanges; i++ {
		b.add(0, i*200*ms, i*200*ms+100*ms)
	}
	require.LessOrEqual(t, b.n, maxRanges)
	b.advance(10_000 * ms)
	require.Positive(t, b.stalls)
}

func TestPlayerBufferFirstFrom(t *testing.T) {
	var b playerBuffer
	b.add(0, 100*ms, 300*ms)
	b.add(0, 400*ms, 500*ms)
	at, run := b.firstFrom(250 * ms)
	require.Equal(t, 250*ms, at)
	require.Equal(t, 50*time.Millisecond, run)
	at, run = b.firstFrom(300 * ms) // in the hole: starts at the next range
	require.Equal(t, 400*ms, at)
	require.Equal(t, 100*time.Millisecond, run)
	_, run = b.firstFrom(600 * ms)
	require.Zero(t, run)
}
