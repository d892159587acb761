package check

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Rules on delivery directives (LLHLS.md §2).

func (r *run) ruleBlocking() Result {
	pl := r.first
	switch {
	case !pl.isLL():
		return skip("", "no EXT-X-PART-INF: not a low-latency playlist")
	case pl.sc["CAN-BLOCK-RELOAD"] != "YES":
		return fail("", "EXT-X-PART-INF without EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES")
	case pl.ended:
		return skip("", "the playlist has EXT-X-ENDLIST: directives are ignored")
	}
	var v verdict

	// The follower's reloads: each asked for the part after the last listed.
	bound := 3*r.pt + 500*time.Millisecond + r.cfg.Slack
	n := 0
	var slowest time.Duration
	for _, rl := range r.reloads {
		if !rl.blocking {
			continue
		}
		switch {
		case !rl.res.ok():
			v.fail("reload for part %s: %s", rl.want, rl.res.describe())
		case rl.pl == nil:
			v.fail("reload for part %s: malformed playlist: %v", rl.want, rl.perr)
		case !rl.pl.has(rl.want):
			v.fail("reload for part %s answered 200 without it after %s", rl.want, seconds(rl.res.elapsed))
		case rl.res.elapsed > bound:
			v.fail("reload for part %s took %s > 3 × PART-TARGET + 0.5s = %s", rl.want, seconds(rl.res.elapsed), seconds(bound))
		default:
			n++
			slowest = max(slowest, rl.res.elapsed)
		}
	}
	switch {
	case n > 0:
		v.note("%d next-part reloads 200 with the part, slowest %s ≤ %s", n, seconds(slowest), seconds(bound))
	case len(v.fails) == 0:
		v.fail("no blocking reload was answered within the check's duration")
	}

	if p := r.msnOnly; p != nil {
		limit := r.td*3/2 + r.pt + 500*time.Millisecond + r.cfg.Slack
		switch {
		case !p.res.ok():
			v.fail("_HLS_msn=%d alone (next segment): %s", p.q.msn, p.res.describe())
		case p.pl == nil:
			v.fail("_HLS_msn=%d alone: malformed playlist", p.q.msn)
		case !p.pl.hasSegmentOrPart0(p.q.msn):
			v.fail("_HLS_msn=%d alone answered 200 after %s without part 0 of segment %d: it must block (Safari spins, OvenMediaEngine #2207)",
				p.q.msn, seconds(p.res.elapsed), p.q.msn)
		case p.res.elapsed > limit:
			v.fail("_HLS_msn=%d alone took %s > 1.5 × TD + PART-TARGET + 0.5s = %s", p.q.msn, seconds(p.res.elapsed), seconds(limit))
		default:
			v.note("_HLS_msn alone for the next segment: 200 with its part 0 after %s", seconds(p.res.elapsed))
		}
	}

	if p := r.tooFar; p != nil {
		last := p.from.nextMSN()
		switch {
		case p.res.err != nil || p.res.status != http.StatusBadRequest:
			v.fail("_HLS_msn=%d (segment in progress %d): want 400 at once, got %s", p.q.msn, last, p.res.describe())
		case p.res.elapsed >= time.Second+r.cfg.Slack:
			v.fail("_HLS_msn=%d: 400 only after %s, not at once", p.q.msn, seconds(p.res.elapsed))
		default:
			v.note("_HLS_msn=last+3: 400 in %s", seconds(p.res.elapsed))
		}
	}

	if res := r.partAlone; res != nil {
		if res.err != nil || res.status != http.StatusBadRequest {
			v.fail("_HLS_part without _HLS_msn: want 400, got %s", res.describe())
		} else {
			v.note("_HLS_part alone: 400")
		}
	}

	switch p := r.unmeetable; {
	case !r.strict:
		v.note("unmeetable hold not tried (--strict-503)")
	case p == nil:
		v.note("unmeetable hold not sent (no suitable playlist update)")
	default:
		r.judgeUnmeetable(&v, p)
	}
	return v.result()
}

// judgeUnmeetable judges the answer to a hold the stream cannot meet within
// 3 target durations: 503, never 200 with a playlist that lacks the part
// (AVPlayer -15410, AetherEngine #167).
func (r *run) judgeUnmeetable(v *verdict, p *directiveProbe) {
	q := fmt.Sprintf("_HLS_msn=%d&_HLS_part=%d", p.q.msn, p.q.part)
	switch {
	case p.res.err != nil:
		v.fail("%s: %s (a hold must end in 503 after 3 × TD = %s)", q, p.res.err, seconds(3*r.td))
	case p.res.status == http.StatusServiceUnavailable:
		v.note("unmeetable hold: 503 after %s", seconds(p.res.elapsed))
	case p.res.status == http.StatusBadRequest:
		v.note("unmeetable hold %s: 400 (the server counts it past its limits)", q)
	case p.res.status != http.StatusOK:
		v.fail("%s: %s, want 503", q, p.res.describe())
	case p.pl == nil:
		v.fail("%s: 200 with a malformed playlist", q)
	case !p.pl.has(p.q):
		v.fail("%s: 200 after %s without the part: a timed-out hold must end in 503 (AVPlayer -15410)", q, seconds(p.res.elapsed))
	default:
		v.note("hold for %s met after %s (503 not exercised)", q, seconds(p.res.elapsed))
	}
}

func (r *run) ruleDelta() Result {
	pl := r.first
	csuText, ok := pl.sc["CAN-SKIP-UNTIL"]
	switch {
	case !ok:
		return skip("", "no CAN-SKIP-UNTIL in EXT-X-SERVER-CONTROL")
	case pl.ended:
		return skip("", "the playlist has EXT-X-ENDLIST")
	case r.delta == nil:
		return skip("", "delta update not requested (the check was cut short)")
	}
	csu, _ := strconv.ParseFloat(csuText, 64)
	p := r.delta
	switch {
	case !p.a.ok():
		return fail("", "full playlist: %s", p.a.describe())
	case !p.b.ok():
		return fail("", "_HLS_skip=YES: %s", p.b.describe())
	}
	full, err := parseMedia(p.a.body)
	if err != nil {
		return fail("", "full playlist: %v", err)
	}
	d, err := parseMedia(p.b.body)
	if err != nil {
		return fail("", "_HLS_skip=YES: malformed delta update: %v", err)
	}
	if !d.hasSkip {
		return fail("", "_HLS_skip=YES answered without EXT-X-SKIP")
	}
	if !sameVersion(full, d) {
		return skip("", "the playlist moved on between the full and the delta answer in %d tries", p.tries)
	}
	var v verdict
	if d.version < 9 {
		v.fail("EXT-X-SKIP with EXT-X-VERSION %d (needs ≥ 9)", d.version)
	}
	if d.mediaSequence != full.mediaSequence {
		v.fail("delta EXT-X-MEDIA-SEQUENCE %d ≠ full %d", d.mediaSequence, full.mediaSequence)
	}
	n := d.skipped
	if n > uint64(len(full.segments)) {
		return fail("", "SKIPPED-SEGMENTS=%d but the full playlist has %d segments", n, len(full.segments))
	}
	rest := full.segments[n:]
	if len(d.segments) != len(rest) {
		v.fail("delta lists %d segments after the skip, the full playlist %d", len(d.segments), len(rest))
	} else {
		for i := range rest {
			if !sameSegment(rest[i], d.segments[i]) {
				v.fail("segment %d differs: %s %s in the delta, %s %s in full", rest[i].msn,
					name(d.segments[i].uri), num(d.segments[i].duration), name(rest[i].uri), num(rest[i].duration))
				break
			}
		}
	}
	if !sameParts(full.tail, d.tail) {
		v.fail("the parts of the segment in progress differ between delta and full")
	}
	var left float64
	for _, s := range d.segments {
		left += s.duration
	}
	for _, pt := range d.tail {
		left += pt.duration
	}
	if n > 0 && left < csu-eps {
		v.fail("skipped too much: %s left < CAN-SKIP-UNTIL %s", secondsF(left), num(csu))
	}
	if n == 0 {
		v.note("SKIPPED-SEGMENTS=0 (%s listed, CAN-SKIP-UNTIL %s); the rest matches the full playlist", secondsF(left), num(csu))
	} else {
		v.note("SKIPPED-SEGMENTS=%d; the %s and %s after it match the full playlist; %s left ≥ CAN-SKIP-UNTIL %s",
			n, plural(len(d.segments), "segment", "segments"), plural(len(d.tail), "part", "parts"), secondsF(left), num(csu))
	}
	return v.result()
}

func sameSegment(a, b segment) bool {
	return a.uri == b.uri && a.duration == b.duration && a.discontinuity == b.discontinuity &&
		a.hasPDT == b.hasPDT && a.pdt.Equal(b.pdt) && sameParts(a.parts, b.parts)
}

func sameParts(a, b []part) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
