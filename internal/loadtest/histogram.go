package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: values are microseconds, signed. Magnitudes below
// 2^subBits have one bucket each; above, every power of two is split into
// 2^subBits linear buckets, so a bucket is at most 1/32 (3.1 %) of its value
// wide. Magnitudes beyond 2^maxExp µs (12.7 days) land in the last bucket.
const (
	subBits  = 5
	subCount = 1 << subBits
	maxExp   = 40
	nBuckets = (maxExp-subBits+1)*subCount + subCount
)

// Histogram records durations without allocating: Record is a handful of
// atomic adds on fixed buckets, safe from any number of goroutines. Negative
// durations (a part that arrived before its audio ended by the server's
// clock) have their own buckets. Create it with newHistogram.
type Histogram struct {
	pos, neg [nBuckets]atomic.Uint64
	count    atomic.Uint64
	sum      atomic.Int64 // µs
	min, max atomic.Int64 // µs
}

func newHistogram() *Histogram {
	h := &Histogram{}
	h.min.Store(math.MaxInt64)
	h.max.Store(math.MinInt64)
	return h
}

// bucketOf returns the bucket of a magnitude in µs.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v ≥ 2^e, e ≥ subBits
	if e > maxExp {
		return nBuckets - 1
	}
	sub := int(v>>(e-subBits)) & (subCount - 1)
	return (e-subBits+1)*subCount + sub
}

// bucketRange returns the magnitudes [lo, hi) that bucket b holds.
func bucketRange(b int) (lo, hi uint64) {
	if b < subCount {
		return uint64(b), uint64(b) + 1
	}
	e := b/subCount - 1 + subBits
	sub := uint64(b % subCount)
	lo = (subCount + sub) << (e - subBits)
	return lo, lo + 1<<(e-subBits)
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := d.Microseconds()
	if v >= 0 {
		h.pos[bucketOf(uint64(v))].Add(1)
	} else {
		h.neg[bucketOf(uint64(-v))].Add(1)
	}
	h.count.Add(1)
	h.sum.Add(v)
	for cur := h.min.Load(); v < cur && !h.min.CompareAndSwap(cur, v); cur = h.min.Load() {
	}
	for cur := h.max.Load(); v > cur && !h.max.CompareAndSwap(cur, v); cur = h.max.Load() {
	}
}

// snapshot copies the counters into a plain histogram.
func (h *Histogram) snapshot() *histSnapshot {
	s := &histSnapshot{count: h.count.Load(), sum: h.sum.Load(), min: h.min.Load(), max: h.max.Load()}
	for i := range h.pos {
		s.pos[i] = h.pos[i].Load()
		s.neg[i] = h.neg[i].Load()
	}
	return s
}

// histSnapshot is a Histogram at one moment; snapshots merge.
type histSnapshot struct {
	pos, neg [nBuckets]uint64
	count    uint64
	sum      int64
	min, max int64
}

func (s *histSnapshot) merge(o *histSnapshot) {
	if o.count == 0 {
		return
	}
	if s.count == 0 || o.min < s.min {
		s.min = o.min
	}
	if s.count == 0 || o.max > s.max {
		s.max = o.max
	}
	for i := range s.pos {
		s.pos[i] += o.pos[i]
		s.neg[i] += o.neg[i]
	}
	s.count += o.count
	s.sum += o.sum
}

// quantile returns the q-quantile (0 < q ≤ 1) in µs: the middle of the bucket
// that holds it, clamped to the observed min and max.
func (s *histSnapshot) quantile(q float64) int64 {
	if s.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.count)))
	rank = max(rank, 1)
	if rank >= s.count {
		return s.max
	}
	var seen uint64
	var v int64
	found := false
	// Most negative first: neg buckets from the largest magnitude down.
	for b := nBuckets - 1; b >= 0 && !found; b-- {
		if seen += s.neg[b]; seen >= rank {
			lo, hi := bucketRange(b)
			v, found = -int64((lo+hi-1)/2), true
		}
	}
	for b := 0; b < nBuckets && !found; b++ {
		if seen += s.pos[b]; seen >= rank {
			lo, hi := bucketRange(b)
			v, found = int64((lo+hi-1)/2), true
		}
	}
	return min(max(v, s.min), s.max)
}

// Stats are a histogram's figures in milliseconds, as reported.
type Stats struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func (s *histSnapshot) stats() Stats {
	if s.count == 0 {
		return Stats{}
	}
	ms := func(us int64) float64 { return math.Round(float64(us)/10) / 100 }
	return Stats{
		Count: int64(s.count),
		Mean:  math.Round(float64(s.sum)/float64(s.count)/10) / 100,
		P50:   ms(s.quantile(0.50)),
		P90:   ms(s.quantile(0.90)),
		P99:   ms(s.quantile(0.99)),
		Max:   ms(s.max),
	}
}

// statsOrNil is stats, or nil for an empty histogram (a figure left out of
// the report).
func (s *histSnapshot) statsOrNil() *Stats {
	if s.count == 0 {
		return nil
	}
	st := s.stats()
	return &st
}
