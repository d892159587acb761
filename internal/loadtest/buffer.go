package loadtest

import "time"

// gapTolerance joins media ranges whose edges differ by less than this:
// PROGRAM-DATE-TIME has millisecond precision and durations five decimals.
const gapTolerance = int64(5 * time.Millisecond)

const maxRanges = 16

// playerBuffer models a player's audio buffer on the media timeline (Unix ns
// of PROGRAM-DATE-TIME), evaluated lazily from wall-clock instants:
//
//   - Playback starts at a chosen position (hold-back behind live) once the
//     first media is held, and then advances at wall-clock speed.
//   - When the playhead reaches the end of the buffered media and nothing
//     is buffered beyond it, playback freezes (a stall) until media arrives;
//     if that media starts later than the playhead, the player jumps to it.
//   - When a part is missing but later media is buffered, the hole plays as
//     silence at wall-clock speed (a stall lasting as long as the hole), as
//     an audio player that conceals gaps does; the live offset is kept.
//
// Each entry into a frozen or silent state counts one stall; stalled is the
// total time spent in those states.
type playerBuffer struct {
	started bool
	ph      int64 // playhead, media time
	at      int64 // wall-clock time ph refers to
	frozen  bool
	silent  bool
	rs      [maxRanges]struct{ s, e int64 }
	n       int
	stalls  int64
	stalled time.Duration
}

// start begins playback at media position ph at wall time now.
func (b *playerBuffer) start(now, ph int64) {
	b.started, b.ph, b.at = true, ph, now
	b.trim()
}

// trim drops buffered ranges the playhead has passed.
func (b *playerBuffer) trim() {
	i := 0
	for i < b.n && b.rs[i].e <= b.ph+gapTolerance {
		i++
	}
	if i > 0 {
		copy(b.rs[:], b.rs[i:b.n])
		b.n -= i
	}
}

// advance plays until wall time now.
func (b *playerBuffer) advance(now int64) {
	if !b.started {
		return
	}
	for b.at < now {
		if b.frozen {
			b.stalled += time.Duration(now - b.at)
			b.at = now
			return
		}
		b.trim()
		if b.n == 0 {
			b.frozen, b.silent = true, false
			b.stalls++
			continue
		}
		r := b.rs[0]
		if b.ph+gapTolerance < r.s { // a hole: silence until the next range
			if !b.silent {
				b.silent = true
				b.stalls++
			}
			step := min(now-b.at, r.s-b.ph)
			b.ph += step
			b.at += step
			b.stalled += time.Duration(step)
			continue
		}
		b.silent = false
		step := min(now-b.at, r.e-b.ph)
		b.ph += step
		b.at += step
	}
}

// add records that media [s, e) is held at wall time now.
func (b *playerBuffer) add(now, s, e int64) {
	b.advance(now)
	if b.started && e <= b.ph+gapTolerance {
		return // too late: already played past
	}
	b.insert(s, e)
	if b.frozen {
		b.frozen = false
		if first := b.rs[0].s; first > b.ph {
			b.ph = first // jump over what never came
		}
	}
}

func (b *playerBuffer) insert(s, e int64) {
	i := 0
	for i < b.n && b.rs[i].e+gapTolerance < s {
		i++
	}
	if i < b.n && b.rs[i].s <= e+gapTolerance { // overlaps or touches rs[i]: merge
		b.rs[i].s = min(b.rs[i].s, s)
		b.rs[i].e = max(b.rs[i].e, e)
		for i+1 < b.n && b.rs[i+1].s <= b.rs[i].e+gapTolerance {
			b.rs[i].e = max(b.rs[i].e, b.rs[i+1].e)
			copy(b.rs[i+1:], b.rs[i+2:b.n])
			b.n--
		}
		return
	}
	if b.n == maxRanges { // full of holes: forget the farthest range
		b.n--
		if i > b.n {
			return
		}
	}
	copy(b.rs[i+1:b.n+1], b.rs[i:b.n])
	b.rs[i] = struct{ s, e int64 }{s, e}
	b.n++
}

// firstFrom finds the buffered media at or after pos: where playback
// starting at pos would begin, and how much it could play without a break.
func (b *playerBuffer) firstFrom(pos int64) (at int64, run time.Duration) {
	for i := range b.n {
		if r := b.rs[i]; r.e > pos+gapTolerance {
			at = max(pos, r.s)
			return at, time.Duration(r.e - at)
		}
	}
	return 0, 0
}

// ahead is how much media is buffered contiguously ahead of the playhead.
func (b *playerBuffer) ahead() time.Duration {
	if b.n == 0 || b.rs[0].s > b.ph+gapTolerance {
		return 0
	}
	return time.Duration(b.rs[0].e - b.ph)
}
