package llhls

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/stretchr/testify/require"
)

// checkPlaylist has complete segments 10 (parts no longer listed), 11 and 12
// (4 parts each) and trailing complete parts of segment 13.
func checkPlaylist(trailing int, partTarget time.Duration) *Playlist {
	return &Playlist{
		TargetDuration: 1,
		PartTarget:     partTarget,
		MediaSequence:  10,
		Segments: []Segment{
			{Duration: time.Second, URI: "s10.m4s"},
			{Duration: time.Second, URI: "s11.m4s", Parts: testParts(11, 4)},
			{Duration: time.Second, URI: "s12.m4s", Parts: testParts(12, 4)},
		},
		Parts:       testParts(13, trailing),
		PreloadHint: fmt.Sprintf("part13.%d.m4s", trailing),
	}
}

func msn(m uint64) Directives { return Directives{HasMSN: true, MSN: m} }

func msnPart(m, p uint64) Directives {
	return Directives{HasMSN: true, MSN: m, HasPart: true, Part: p}
}

func TestSnapshotCheck(t *testing.T) {
	const (
		hold = iota
		satisfied
		tooFar
	)
	// Advance Part Limit: 3 with 1 s parts, 15 with 0.21333 s parts.
	twoParts := func() *Playlist { return checkPlaylist(2, time.Second) }
	noParts := func() *Playlist { return checkPlaylist(0, time.Second) }
	shortParts := func() *Playlist { return checkPlaylist(2, testPartTarget) }
	unlisted := func() *Playlist {
		p := checkPlaylist(0, time.Second)
		p.Segments[2].Parts = nil
		return p
	}
	ended := func() *Playlist {
		p := checkPlaylist(0, time.Second)
		p.Ended = true
		return p
	}
	empty := func() *Playlist { return &Playlist{TargetDuration: 1, PartTarget: time.Second, MediaSequence: 10} }
	partsOnly := func() *Playlist {
		p := empty()
		p.Parts = testParts(10, 2)
		return p
	}

	for _, tc := range []struct {
		name string
		pl   func() *Playlist
		d    Directives
		want int
	}{
		{"no directives", twoParts, Directives{}, satisfied},
		{"skip only", twoParts, Directives{Skip: true}, satisfied},
		{"msn before the window", twoParts, msn(5), satisfied},
		{"msn and part before the window", twoParts, msnPart(0, 9), satisfied},
		{"first segment", twoParts, msn(10), satisfied},
		{"segment without listed parts, any part", twoParts, msnPart(10, 7), satisfied},
		{"complete segment", twoParts, msn(12), satisfied},
		{"last part of a complete segment", twoParts, msnPart(12, 3), satisfied},
		{"part past a complete segment maps to the next one", twoParts, msnPart(12, 4), satisfied},
		{"part far past an older segment maps to the next one", twoParts, msnPart(11, 100), satisfied},
		{"part past the last complete segment, next has none", noParts, msnPart(12, 4), hold},
		{"in-progress segment with parts, msn only", twoParts, msn(13), satisfied},
		{"in-progress segment with 0 parts, msn only", noParts, msn(13), hold},
		{"existing part of the in-progress segment", twoParts, msnPart(13, 1), satisfied},
		{"next part", twoParts, msnPart(13, 2), hold},
		{"part at the Advance Part Limit", twoParts, msnPart(13, 4), hold},
		{"part beyond the Advance Part Limit", twoParts, msnPart(13, 5), tooFar},
		{"next segment", twoParts, msn(14), hold},
		{"part of the next segment within the limit", twoParts, msnPart(14, 2), hold},
		{"part of the next segment beyond the limit", twoParts, msnPart(14, 3), tooFar},
		{"last msn + 2", twoParts, msn(15), hold},
		{"last msn + 3", twoParts, msn(16), tooFar},
		{"largest msn", twoParts, msn(maxDirective), tooFar},
		{"no trailing parts: last complete + 2", noParts, msn(14), hold},
		{"no trailing parts: last complete + 3", noParts, msn(15), tooFar},
		{"no trailing parts: limit past the last part", noParts, msnPart(12, 6), hold},
		{"no trailing parts: beyond the limit past the last part", noParts, msnPart(12, 7), tooFar},
		{"no trailing parts: in-progress part within the limit", noParts, msnPart(13, 2), hold},
		{"no trailing parts: in-progress part beyond the limit", noParts, msnPart(13, 3), tooFar},
		{"last segment without listed parts, any part", unlisted, msnPart(12, 50), satisfied},
		{"last segment without listed parts, next", unlisted, msnPart(13, 2), hold},
		{"last segment without listed parts, beyond the limit", unlisted, msnPart(13, 3), tooFar},
		{"short parts: at the limit", shortParts, msnPart(13, 16), hold},
		{"short parts: beyond the limit", shortParts, msnPart(13, 17), tooFar},
		{"short parts: next segment at the limit", shortParts, msnPart(14, 14), hold},
		{"short parts: next segment beyond the limit", shortParts, msnPart(14, 15), tooFar},
		{"ended: future msn", ended, msn(100), satisfied},
		{"ended: far part", ended, msnPart(13, 99), satisfied},
		{"ended: huge msn", ended, msn(maxDirective), satisfied},
		{"no content", empty, msn(10), hold},
		{"no content, msn 0", empty, msn(0), hold},
		{"no content, far msn", empty, msn(1000), hold},
		{"parts but no complete segment", partsOnly, msnPart(10, 0), hold},
		{"no content, no directives", empty, Directives{}, satisfied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sat, far := NewSnapshot(tc.pl(), time.Time{}).Check(tc.d)
			require.False(t, sat && far, "satisfied and too far at once")
			got := hold
			switch {
			case sat:
				got = satisfied
			case far:
				got = tooFar
			}
			names := []string{"hold", "satisfied", "tooFar"}
			require.Equal(t, names[tc.want], names[got])
		})
	}
}

func TestSnapshotLastPosition(t *testing.T) {
	for _, tc := range []struct {
		name string
		pl   *Playlist
		msn  uint64
		part int
		ok   bool
	}{
		{"empty", &Playlist{MediaSequence: 4}, 0, 0, false},
		{"trailing parts", checkPlaylist(2, time.Second), 13, 1, true},
		{"complete segment with parts", checkPlaylist(0, time.Second), 12, 3, true},
		{"complete segment without parts", &Playlist{MediaSequence: 4, Segments: []Segment{{URI: "a"}}}, 4, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, p, ok := NewSnapshot(tc.pl, time.Time{}).LastPosition()
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, tc.msn, m)
				require.Equal(t, tc.part, p)
			}
		})
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return out
}

func TestSnapshotBytes(t *testing.T) {
	p := longPlaylist()
	s := NewSnapshot(p, time.Time{})
	require.Same(t, p, s.Playlist())
	require.Equal(t, time.Second, s.TargetDuration())
	require.True(t, s.HasContent())

	// Ask for the delta first: the full rendering must not be affected.
	delta, err := s.Bytes(true, false)
	require.NoError(t, err)
	full, err := s.Bytes(false, false)
	require.NoError(t, err)
	require.Equal(t, mustRender(t, p, true), string(delta))
	require.Equal(t, mustRender(t, p, false), string(full))

	for _, d := range []bool{false, true} {
		plain, err := s.Bytes(d, false)
		require.NoError(t, err)
		gz, err := s.Bytes(d, true)
		require.NoError(t, err)
		require.Equal(t, plain, gunzip(t, gz))
		require.Less(t, len(gz), len(plain))

		// Rendered once, shared by every listener.
		again, err := s.Bytes(d, false)
		require.NoError(t, err)
		require.Same(t, &plain[0], &again[0])
		gzAgain, err := s.Bytes(d, true)
		require.NoError(t, err)
		require.Same(t, &gz[0], &gzAgain[0])
	}
}

func TestSnapshotBytesWithoutDeltaUpdates(t *testing.T) {
	p := longPlaylist()
	p.CanSkipUntil = 0
	s := NewSnapshot(p, time.Time{})
	delta, err := s.Bytes(true, false)
	require.NoError(t, err)
	full, err := s.Bytes(false, false)
	require.NoError(t, err)
	require.NotContains(t, string(full), "#EXT-X-SKIP")
	require.Equal(t, mustRender(t, p, false), string(full))
	require.Equal(t, string(full), string(delta))
}

func TestSnapshotBytesConcurrent(t *testing.T) {
	p := longPlaylist()
	s := NewSnapshot(p, time.Time{})
	want := map[[2]bool]string{}
	for _, d := range []bool{false, true} {
		plain := mustRender(t, p, d)
		want[[2]bool{d, false}] = plain
		want[[2]bool{d, true}] = plain
	}
	var wg sync.WaitGroup
	results := make([][]byte, 64)
	for i := range results {
		wg.Go(func() {
			b, err := s.Bytes(i%2 == 0, i%4 < 2)
			if err == nil {
				results[i] = b
			}
		})
	}
	wg.Wait()
	for i, b := range results {
		d, gz := i%2 == 0, i%4 < 2
		require.NotNil(t, b, "call %d failed", i)
		if gz {
			b = gunzip(t, b)
		}
		require.Equal(t, want[[2]bool{d, gz}], string(b), "call %d", i)
	}
}

func TestSnapshotHasContent(t *testing.T) {
	require.False(t, NewSnapshot(&Playlist{}, time.Time{}).HasContent())
	require.False(t, NewSnapshot(&Playlist{Parts: testParts(0, 2)}, time.Time{}).HasContent())
	require.True(t, NewSnapshot(checkPlaylist(0, time.Second), time.Time{}).HasContent())
	require.Zero(t, NewSnapshot(&Playlist{}, time.Time{}).TargetDuration())
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

var noStop = newHolds(nil)

func snapSeq(m uint64) *Snapshot { return NewSnapshot(&Playlist{MediaSequence: m}, time.Time{}) }

func atLeast(m uint64) func(*Snapshot) bool {
	return func(s *Snapshot) bool { return s.Playlist().MediaSequence >= m }
}

func TestFeedPublish(t *testing.T) {
	first := snapSeq(1)
	f := NewFeed(first)
	require.Same(t, first, f.Current())
	sig := f.sig.Load()

	second := snapSeq(2)
	f.Publish(second)
	require.Same(t, second, f.Current())
	require.True(t, isClosed(sig.ch))
	sig = f.sig.Load()
	require.False(t, isClosed(sig.ch))

	// Publishing the current snapshot again changes nothing.
	require.NotPanics(t, func() { f.Publish(second) })
	require.Same(t, second, f.Current())
	require.False(t, isClosed(sig.ch))

	third := snapSeq(3)
	f.Publish(third)
	require.True(t, isClosed(sig.ch))
	require.Same(t, third, f.Current())
}

func TestFeedWithoutFirstSnapshot(t *testing.T) {
	f := NewFeed(nil)
	require.Nil(t, f.Current())
	s := NewSnapshot(&Playlist{}, time.Time{})
	require.NotPanics(t, func() { f.Publish(s) })
	require.Same(t, s, f.Current())
}

func TestFeedWakesAllWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := NewFeed(snapSeq(1))
		const n = 200
		var woken atomic.Int32
		got := make([]*Snapshot, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				s, err := waitFor(t.Context(), noStop, f, time.Minute, atLeast(2))
				require.NoError(t, err)
				woken.Add(1)
				got[i] = s
			})
		}
		synctest.Wait()
		require.Zero(t, woken.Load(), "a waiter woke before any publish")

		next := snapSeq(2)
		start := time.Now()
		f.Publish(next)
		wg.Wait()
		require.Equal(t, int32(n), woken.Load())
		require.Zero(t, time.Since(start))
		for i := range got {
			require.Same(t, next, got[i], "waiter %d", i)
		}
	})
}

// Waiters of a stalled feed whose holds end one after another are woken
// together in rounds (holdCoalesce apart), not each by its own timer wake:
// one wake per round for every waiter, and each expires at most
// holdCoalesce late.
func TestFeedStalledHoldsCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := NewFeed(snapSeq(1))
		const n = 50
		var checks atomic.Int32
		late := make([]time.Duration, n)
		var wg sync.WaitGroup
		for i := range n {
			time.Sleep(time.Millisecond) // deadlines 1 ms apart
			wg.Go(func() {
				start := time.Now()
				_, err := waitFor(t.Context(), noStop, f, time.Second, func(s *Snapshot) bool {
					checks.Add(1)
					return false
				})
				require.ErrorIs(t, err, errHoldExpired)
				late[i] = time.Since(start) - time.Second
			})
		}
		wg.Wait()
		for i, d := range late {
			require.GreaterOrEqual(t, d, time.Duration(0), "waiter %d", i)
			require.LessOrEqual(t, d, holdCoalesce, "waiter %d", i)
		}
		// 50 ms of deadlines: about six rounds, not fifty.
		require.Less(t, int(checks.Load()), n*8)
		require.Zero(t, f.timerAt.Load(), "timer left armed")
	})
}

// Publishes disarm the timer, so a healthy feed never wakes its waiters for
// nothing: a listener that asks for each next version as soon as it has one
// is checked twice per version, when it asks and when the version comes,
// although every hold's timer would have run out three times over.
func TestFeedNoIdleWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := NewFeed(snapSeq(1))
		const n, versions = 20, 10
		var checks atomic.Int32
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				for m := range uint64(versions) {
					_, err := waitFor(t.Context(), noStop, f, 3*time.Second, func(s *Snapshot) bool {
						checks.Add(1)
						return s.Playlist().MediaSequence >= 2+m
					})
					require.NoError(t, err)
				}
			})
		}
		for m := range uint64(versions) {
			time.Sleep(time.Second)
			f.Publish(snapSeq(2 + m))
		}
		wg.Wait()
		require.Equal(t, int32(n*versions*2), checks.Load())
	})
}

// Closing a handler's Stop releases its held requests at once.
func TestWaitForStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := NewFeed(snapSeq(1))
		other := NewFeed(snapSeq(1))
		stop := make(chan struct{})
		hs := newHolds(stop)
		errs := make(chan error, 2)
		for _, g := range []*Feed{f, other} {
			go func() {
				_, err := waitFor(t.Context(), hs, g, time.Minute, atLeast(2))
				errs <- err
			}()
		}
		// A request of another handler is woken, and waits on.
		keeps := make(chan error, 1)
		go func() {
			_, err := waitFor(t.Context(), noStop, f, 10*time.Second, atLeast(2))
			keeps <- err
		}()
		time.Sleep(time.Second)
		start := time.Now()
		close(stop)
		require.ErrorIs(t, <-errs, errShuttingDown)
		require.ErrorIs(t, <-errs, errShuttingDown)
		require.Zero(t, time.Since(start))
		synctest.Wait()
		require.Empty(t, keeps)
		require.ErrorIs(t, <-keeps, errHoldExpired)
		require.Equal(t, 9*time.Second, time.Since(start))

		// Once stopped, a hold that would have to wait ends at once.
		_, err := waitFor(t.Context(), hs, f, time.Minute, atLeast(2))
		require.ErrorIs(t, err, errShuttingDown)
		require.Zero(t, time.Since(start)-9*time.Second)
	})
}

func TestWaitFor(t *testing.T) {
	snap := snapSeq

	t.Run("satisfied at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := NewFeed(snap(5))
			start := time.Now()
			s, err := waitFor(t.Context(), noStop, f, time.Second, atLeast(5))
			require.NoError(t, err)
			require.Same(t, f.Current(), s)
			require.Zero(t, time.Since(start))
		})
	})

	t.Run("woken by the publish that satisfies it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := NewFeed(snap(1))
			var (
				got     *Snapshot
				err     error
				elapsed time.Duration
			)
			done := make(chan struct{})
			go func() {
				defer close(done)
				start := time.Now()
				got, err = waitFor(t.Context(), noStop, f, 10*time.Second, atLeast(3))
				elapsed = time.Since(start)
			}()
			time.Sleep(time.Second)
			f.Publish(snap(2)) // not enough
			synctest.Wait()
			require.False(t, isClosed(done))
			time.Sleep(time.Second)
			want := snap(3)
			f.Publish(want)
			<-done
			require.NoError(t, err)
			require.Same(t, want, got)
			require.Equal(t, 2*time.Second, elapsed)
		})
	})

	t.Run("expires after the limit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := NewFeed(snap(1))
			start := time.Now()
			s, err := waitFor(t.Context(), noStop, f, 6*time.Second, atLeast(3))
			require.ErrorIs(t, err, errHoldExpired)
			require.Nil(t, s)
			require.Equal(t, 6*time.Second, time.Since(start))
		})
	})

	t.Run("publishes do not extend the limit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := NewFeed(snap(1))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() {
				for i := range 20 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(500 * time.Millisecond):
						f.Publish(snap(uint64(i % 2))) // never satisfies
					}
				}
			}()
			start := time.Now()
			_, err := waitFor(t.Context(), noStop, f, 3*time.Second, atLeast(3))
			require.ErrorIs(t, err, errHoldExpired)
			require.Equal(t, 3*time.Second, time.Since(start))
		})
	})

	t.Run("request cancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := NewFeed(snap(1))
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(time.Second, cancel)
			start := time.Now()
			s, err := waitFor(ctx, noStop, f, time.Minute, atLeast(3))
			require.ErrorIs(t, err, context.Canceled)
			require.Nil(t, s)
			require.Equal(t, time.Second, time.Since(start))
		})
	})
}

func BenchmarkSnapshotBytes(b *testing.B) {
	p := longPlaylist()
	b.ReportAllocs()
	for b.Loop() {
		s := NewSnapshot(p, time.Time{})
		if _, err := s.Bytes(false, true); err != nil {
			b.Fatal(err)
		}
	}
}

// Waiters with mixed limits and conditions, publishes and a stop, all at
// once on real time (under -race): every waiter ends, with a snapshot that
// satisfies it, errHoldExpired no sooner than its limit and not much
// later, or errShuttingDown once stopped.
func TestFeedConcurrentWaiters(t *testing.T) {
	f := NewFeed(snapSeq(0))
	stop := make(chan struct{})
	hs := newHolds(stop)
	const waiters = 300
	var wg sync.WaitGroup
	var satisfied, expired, stopped atomic.Int32
	for i := range waiters {
		wg.Go(func() {
			limit := time.Duration(1+i%7) * 15 * time.Millisecond
			want := uint64(i % 40)
			for round := 0; ; round++ {
				start := time.Now()
				s, err := waitFor(t.Context(), hs, f, limit, atLeast(want))
				took := time.Since(start)
				switch err {
				case nil:
					require.GreaterOrEqual(t, s.Playlist().MediaSequence, want)
					satisfied.Add(1)
					want += 3
				case errHoldExpired:
					require.GreaterOrEqual(t, took, limit)
					require.Less(t, took, limit+2*time.Second, "expired far too late")
					expired.Add(1)
				case errShuttingDown:
					stopped.Add(1)
					return
				default:
					t.Errorf("waiter %d: %v", i, err)
					return
				}
			}
		})
	}
	for m := range uint64(60) {
		time.Sleep(time.Duration(m%5) * 4 * time.Millisecond) // stalls of 0-16 ms
		f.Publish(snapSeq(m + 1))
	}
	time.Sleep(20 * time.Millisecond) // the last publish's wakes are handled
	before := expired.Load()
	time.Sleep(200 * time.Millisecond) // a stall: only the timer ends holds now
	require.Greater(t, expired.Load(), before, "no hold expired during the stall")
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("waiters still held 10 s after the stop")
	}
	require.Equal(t, int32(waiters), stopped.Load())
	require.NotZero(t, satisfied.Load())
	require.NotZero(t, expired.Load())
}

// Feeds that are gone leave a handler's holds: the set stays bounded
// however many feeds come and go.
func TestHoldsForgetGoneFeeds(t *testing.T) {
	hs := newHolds(make(chan struct{}))
	for range 1000 {
		hs.add(NewFeed(snapSeq(1)))
		if hs.pruneAt > 0 && len(hs.feeds) >= hs.pruneAt-1 {
			runtime.GC()
		}
	}
	runtime.GC()
	kept := NewFeed(snapSeq(1))
	hs.add(kept)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	require.Less(t, len(hs.feeds), 200)
	require.Contains(t, hs.feeds, weak.Make(kept))
	runtime.KeepAlive(kept)
}
