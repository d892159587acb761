package llhls

import (
	"sync"
	"time"
)

// Snapshot is one immutable version of a media playlist, with its renderings
// made once and shared by every listener that asks for them.
type Snapshot struct {
	pl      *Playlist
	created time.Time

	// changed is closed when a newer snapshot replaces this one.
	changed     chan struct{}
	changedOnce sync.Once

	full, delta rendering
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
	return &Snapshot{pl: pl, created: created, changed: make(chan struct{})}
}

// Created is when the playlist entered this tier.
func (s *Snapshot) Created() time.Time { return s.created }

// Playlist returns the model behind the snapshot. It must not be modified.
func (s *Snapshot) Playlist() *Playlist { return s.pl }

// Changed is closed once a newer snapshot has been published.
func (s *Snapshot) Changed() <-chan struct{} { return s.changed }

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

// Feed holds the current snapshot of one media playlist and wakes every
// waiter when it is replaced: the producer closes the old snapshot's channel.
type Feed struct {
	mu  sync.Mutex
	cur *Snapshot
}

// NewFeed returns a Feed whose current snapshot is first.
func NewFeed(first *Snapshot) *Feed {
	return &Feed{cur: first}
}

// Current returns the newest snapshot.
func (f *Feed) Current() *Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

// Publish makes s current and wakes everyone waiting on the previous one.
func (f *Feed) Publish(s *Snapshot) {
	f.mu.Lock()
	old := f.cur
	f.cur = s
	f.mu.Unlock()
	if old != nil && old != s {
		old.changedOnce.Do(func() { close(old.changed) })
	}
}
