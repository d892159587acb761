package llhls

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/amphi-live/amphi/internal/evloop"
)

// Snapshot is one immutable version of a media playlist, with its renderings
// made once and shared by every listener that asks for them.
type Snapshot struct {
	pl      *Playlist
	created time.Time

	full, delta rendering
	// heads are its answers' header blocks for the fast path
	// (WritePrerendered), by [gzip][long Cache-Control].
	heads [2][2]fieldCache
}

type rendering struct {
	once  sync.Once
	plain []byte
	err   error
	// gz is made on the first request that accepts gzip, not with plain:
	// many players never ask for it.
	gzOnce sync.Once
	gz     []byte
}

// NewSnapshot wraps pl, which must not be modified afterwards. created is
// when the playlist entered this tier; caches derive Age from it.
func NewSnapshot(pl *Playlist, created time.Time) *Snapshot {
	return &Snapshot{pl: pl, created: created}
}

// Created is when the playlist entered this tier.
func (s *Snapshot) Created() time.Time { return s.created }

// Playlist returns the model behind the snapshot. It must not be modified.
func (s *Snapshot) Playlist() *Playlist { return s.pl }

// Bytes returns the rendered playlist, gzip-compressed when gz is set.
func (s *Snapshot) Bytes(delta, gz bool) ([]byte, error) {
	delta = delta && s.pl.CanSkipUntil > 0 && !s.pl.Ended
	r := &s.full
	if delta {
		r = &s.delta
	}
	r.once.Do(func() {
		r.plain, r.err = s.pl.Render(delta)
	})
	if r.err != nil || !gz {
		return r.plain, r.err
	}
	r.gzOnce.Do(func() { r.gz = gzipBytes(r.plain) })
	return r.gz, nil
}

// headsFor returns the header block cache of one kind of answer.
func (s *Snapshot) headsFor(gz, long bool) *fieldCache {
	return &s.heads[b2i(gz)][b2i(long)]
}

// TargetDuration as a time.Duration.
func (s *Snapshot) TargetDuration() time.Duration {
	return time.Duration(s.pl.TargetDuration) * time.Second
}

// HasContent reports whether the playlist can be served: it has at least one
// complete segment.
func (s *Snapshot) HasContent() bool { return len(s.pl.Segments) > 0 }

// LastPosition is the (msn, part) of the newest complete part, and whether
// there is one. For segments listed without parts, part is -1.
func (s *Snapshot) LastPosition() (msn uint64, part int, ok bool) {
	p := s.pl
	if len(p.Parts) > 0 {
		return p.NextMSN(), len(p.Parts) - 1, true
	}
	if len(p.Segments) == 0 {
		return 0, 0, false
	}
	return p.NextMSN() - 1, len(p.Segments[len(p.Segments)-1].Parts) - 1, true
}

// Check tells how the snapshot answers a blocking request: satisfied (answer
// now), tooFar (answer 400 now), or neither (hold).
func (s *Snapshot) Check(d Directives) (satisfied, tooFar bool) {
	p := s.pl
	if p.Ended || !d.HasMSN {
		return true, false
	}
	if !s.HasContent() {
		return false, false
	}
	lastMSN, lastPart, _ := s.LastPosition()
	if d.MSN > lastMSN+2 {
		return false, true
	}
	if d.HasPart {
		limit := uint64(p.AdvancePartLimit())
		switch {
		case d.MSN == lastMSN && lastPart >= 0 && d.Part > uint64(lastPart)+limit:
			return false, true
		case d.MSN > lastMSN && d.Part >= limit:
			return false, true
		}
	}

	msn, part := d.MSN, d.Part
	if !d.HasPart {
		part = 0
	}
	next := p.NextMSN()
	if msn < next {
		if msn < p.MediaSequence {
			return true, false
		}
		seg := &p.Segments[msn-p.MediaSequence]
		if len(seg.Parts) == 0 || part < uint64(len(seg.Parts)) {
			return true, false
		}
		// A part index past the segment's last part means part 0 of the
		// following segment.
		msn, part = msn+1, 0
		if msn < next {
			return true, false
		}
	}
	if msn == next {
		return part < uint64(len(p.Parts)), false
	}
	return false, false
}

// Feed holds the current snapshot of one media playlist and wakes the
// requests held on it (waitFor) when it is replaced.
//
// A held request waits on one channel, closed by the next publish, and not
// in a select with a timer of its own: when a part lands, a thousand
// listeners' requests wake at once, and a select locks and queues on every
// channel it names, twice, while a timer per request is set and stopped.
// Hold limits are kept instead by one timer per feed (holdUntil), and
// shutdown by waking every feed that has requests held (holds).
type Feed struct {
	cur atomic.Pointer[Snapshot]
	sig atomic.Pointer[signal] // closed and replaced to wake every waiter

	mu    sync.Mutex
	timer *time.Timer
	// timerAt is when the timer wakes the waiters (UnixNano), 0 when no
	// waiter needs it; written under mu.
	timerAt atomic.Int64
	fired   time.Time // the timer's last wake

	heldBy atomic.Pointer[holds] // the last handler to add the feed to its holds
}

// signal is closed to wake a feed's waiters.
type signal struct{ ch chan struct{} }

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

// NewFeed returns a Feed whose current snapshot is first.
func NewFeed(first *Snapshot) *Feed {
	f := &Feed{}
	f.cur.Store(first)
	f.sig.Store(newSignal())
	return f
}

// Current returns the newest snapshot.
func (f *Feed) Current() *Snapshot { return f.cur.Load() }

// Publish makes s current and wakes everyone waiting on the previous one.
func (f *Feed) Publish(s *Snapshot) {
	if f.cur.Swap(s) == s {
		return
	}
	// Every waiter wakes and re-arms the timer if it still waits, so a
	// timer set for waiters that are answered now would only wake the rest
	// for nothing.
	f.mu.Lock()
	f.disarmLocked()
	f.mu.Unlock()
	f.wake()
}

// wake wakes every waiter.
func (f *Feed) wake() {
	close(f.sig.Swap(newSignal()).ch)
}

// holdCoalesce is the least time between two timer wakes of one feed: when a
// stalled feed's waiters expire one after another, each wake would
// otherwise wake all the others too.
const holdCoalesce = 10 * time.Millisecond

// holdUntil makes sure the waiters are woken by t, or holdCoalesce after
// the timer's previous wake if that is later.
func (f *Feed) holdUntil(t time.Time) {
	if at := f.timerAt.Load(); at != 0 && at <= t.UnixNano() {
		return // the common case: an earlier waiter armed it
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if next := f.fired.Add(holdCoalesce); t.Before(next) {
		t = next
	}
	if at := f.timerAt.Load(); at != 0 && at <= t.UnixNano() {
		return
	}
	f.timerAt.Store(t.UnixNano())
	if f.timer == nil {
		f.timer = time.AfterFunc(time.Until(t), f.fire)
	} else {
		f.timer.Reset(time.Until(t))
	}
}

// fire is the timer's function: it wakes the waiters, whose holds may have
// expired, unless a publish has woken them since the timer was set. (Wall
// clock times only ever make a timer fire early, which merely re-arms it:
// each waiter checks its own deadline on the monotonic clock.)
func (f *Feed) fire() {
	f.mu.Lock()
	if f.timerAt.Load() == 0 {
		f.mu.Unlock()
		return
	}
	f.fired = time.Now()
	f.disarmLocked()
	f.mu.Unlock()
	f.wake()
}

func (f *Feed) disarmLocked() { f.timerAt.Store(0) }

// holds is the set of feeds a Handler's requests have been held on, so that
// closing its stop channel can wake them. It holds them weakly: a feed
// whose broadcast is over goes away with it.
type holds struct {
	stop    <-chan struct{}
	mu      sync.Mutex
	feeds   map[weak.Pointer[Feed]]struct{}
	pruneAt int // prune feeds that are gone once the set is this large
}

// newHolds returns the holds of a handler that stops when stop is closed
// (never, if it is nil).
func newHolds(stop <-chan struct{}) *holds {
	hs := &holds{stop: stop, feeds: make(map[weak.Pointer[Feed]]struct{})}
	if stop != nil {
		go func() {
			<-stop
			hs.mu.Lock()
			fs := make([]*Feed, 0, len(hs.feeds))
			for wp := range hs.feeds {
				if f := wp.Value(); f != nil {
					fs = append(fs, f)
				}
			}
			hs.mu.Unlock()
			for _, f := range fs {
				f.wake()
			}
		}()
	}
	return hs
}

// add makes sure f is in the set. A feed is held on by one handler in
// practice, so this is one atomic load per hold.
func (hs *holds) add(f *Feed) {
	if f.heldBy.Load() == hs {
		return
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if len(hs.feeds) >= hs.pruneAt {
		// Forget feeds that are gone, when the set has doubled since the
		// last time: a stream that hands out a new feed per request must
		// not make each add walk all the others.
		for wp := range hs.feeds {
			if wp.Value() == nil {
				delete(hs.feeds, wp)
			}
		}
		hs.pruneAt = max(64, 2*len(hs.feeds))
	}
	hs.feeds[weak.Make(f)] = struct{}{}
	f.heldBy.Store(hs)
}

func (hs *holds) stopped() bool {
	select {
	case <-hs.stop:
		return true
	default:
		return false
	}
}

// waitFor blocks until cond holds for the feed's current snapshot, the
// request ends (ctx), the handler stops (hs), or limit passes. It returns the
// snapshot that satisfied cond, or nil with the reason. cond runs once per
// wake.
func waitFor(ctx context.Context, hs *holds, f *Feed, limit time.Duration, cond func(*Snapshot) bool) (*Snapshot, error) {
	// The signal before the snapshot: a publish in between closes it.
	sig := f.sig.Load()
	if s := f.Current(); cond(s) {
		return s, nil
	}
	deadline := time.Now().Add(limit)
	if hs.stop != nil {
		// Before the stop check: a stop from then on wakes f.
		hs.add(f)
	}
	done := ctx.Done() // nil under h1, whose requests are not cancelled
	for {
		f.holdUntil(deadline)
		if hs.stopped() {
			return nil, errShuttingDown
		}
		if done == nil {
			// Under h1, on an event loop: the loop waits (see evloop).
			if evloop.Await(ctx, sig.ch) != nil {
				return nil, errShuttingDown
			}
		} else {
			select {
			case <-sig.ch:
			case <-done:
				return nil, ctx.Err()
			}
		}
		sig = f.sig.Load()
		if s := f.Current(); cond(s) {
			return s, nil
		}
		if !time.Now().Before(deadline) {
			return nil, errHoldExpired
		}
	}
}
