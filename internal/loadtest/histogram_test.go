package loadtest

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBucketsCoverTheRange(t *testing.T) {
	prevHi := uint64(0)
	for b := range nBuckets - 1 {
		lo, hi := bucketRange(b)
		require.Equal(t, prevHi, lo, "bucket %d", b)
		require.Equal(t, b, bucketOf(lo))
		require.Equal(t, b, bucketOf(hi-1))
		if lo >= subCount {
			require.LessOrEqual(t, float64(hi-lo)/float64(lo), 1.0/subCount+1e-9)
		}
		prevHi = hi
	}
	require.Equal(t, nBuckets-1, bucketOf(1<<62))
}

func TestQuantilesWithinBucketError(t *testing.T) {
	h := newHistogram()
	rng := rand.New(rand.NewPCG(1, 2))
	var vals []int64
	for range 20000 {
		// -50 ms .. 5 s, skewed towards small values.
		v := int64(rng.ExpFloat64()*200_000) - 50_000
		v = min(v, 5_000_000)
		vals = append(vals, v)
		h.Record(time.Duration(v) * time.Microsecond)
	}
	slices.Sort(vals)
	s := h.snapshot()
	for _, q := range []float64{0.01, 0.1, 0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		got := s.quantile(q)
		tol := max(abs(want)/16, 2)
		require.InDelta(t, want, got, float64(tol), "q=%v", q)
	}
	require.Equal(t, vals[0], s.min)
	require.Equal(t, vals[len(vals)-1], s.max)
	require.Equal(t, vals[len(vals)-1], s.quantile(1))
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestHistogramStatsAndMerge(t *testing.T) {
	a, b := newHistogram(), newHistogram()
	for i := 1; i <= 100; i++ {
		a.Record(time.Duration(i) * time.Millisecond)
	}
	b.Record(-20 * time.Millisecond)
	b.Record(time.Second)
	s := a.snapshot()
	s.merge(b.snapshot())
	st := s.stats()
	require.EqualValues(t, 102, st.Count)
	require.InDelta(t, 51, st.P50, 2)
	require.InDelta(t, 99, st.P99, 3)
	require.Equal(t, 1000.0, st.Max)
	require.Equal(t, int64(-20000), s.min)
	require.Equal(t, Stats{}, newHistogram().snapshot().stats())
}

func TestRecordDoesNotAllocate(t *testing.T) {
	h := newHistogram()
	require.Zero(t, testing.AllocsPerRun(1000, func() { h.Record(1234 * time.Microsecond) }))
}

func BenchmarkRecordParallel(b *testing.B) {
	h := newHistogram()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Millisecond
		for pb.Next() {
			h.Record(d)
			d += time.Microsecond
		}
	})
}
