package check

import (
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Rules on playlist contents (LLHLS.md §1). They judge every reload of the
// followed playlist, each distinct part and segment once.

// eps absorbs the rounding of durations written with 5 decimals.
const eps = 1e-3

func (r *run) rulePartTarget() Result {
	pls := r.parsed()
	if !r.first.isLL() {
		for i, pl := range pls {
			n := 0
			pl.allParts(func(position, part, bool) { n++ })
			if n > 0 {
				return fail("", "reload %d lists EXT-X-PART without EXT-X-PART-INF (§4.4.3.7)", i+1)
			}
		}
		return skip("", "no EXT-X-PART-INF: not a low-latency playlist")
	}
	type judged struct {
		dur, target      float64
		complete, exempt bool
	}
	parts := map[string]*judged{}
	var order []string
	var v verdict
	for i, pl := range pls {
		if !pl.hasPartInf {
			v.fail("reload %d has no EXT-X-PART-INF", i+1)
			continue
		}
		visit := func(list []part, complete bool) {
			for k, pt := range list {
				j := parts[pt.key()]
				if j == nil {
					j = &judged{}
					parts[pt.key()] = j
					order = append(order, pt.key())
				}
				j.dur, j.target = pt.duration, pl.partTarget
				if complete {
					beforeGap := k+1 < len(list) && list[k+1].gap
					j.complete = true
					j.exempt = k == len(list)-1 || pt.independent || pt.gap || beforeGap
				}
			}
		}
		for _, s := range pl.segments {
			visit(s.parts, true)
		}
		visit(pl.tail, false)
	}
	var longest, target float64
	var tooLong, short, exempt int
	for _, key := range order {
		j := parts[key]
		uri, _, _ := strings.Cut(key, "@")
		if j.dur > longest {
			longest, target = j.dur, j.target
		}
		if j.dur > j.target+1e-6 {
			if tooLong++; tooLong == 1 {
				v.fail("part %s lasts %s > PART-TARGET %s (AVPlayer rejects the stream)", name(uri), num(j.dur), num(j.target))
			}
		}
		if j.complete && j.exempt {
			exempt++
		} else if j.complete && j.dur < 0.85*j.target-1e-6 {
			if short++; short == 1 {
				v.fail("part %s lasts %s < 85 %% of PART-TARGET %s and is not the last of its segment, INDEPENDENT or GAP", name(uri), num(j.dur), num(j.target))
			}
		}
	}
	if len(order) == 0 {
		return skip("", "no EXT-X-PART listed")
	}
	if tooLong > 1 {
		v.fail("%d of %d parts longer than PART-TARGET", tooLong, len(order))
	}
	if short > 1 {
		v.fail("%d parts under 85 %% of PART-TARGET", short)
	}
	v.note("longest part %s ≤ PART-TARGET %s over %s; none under 85 %% (%d exempt: last of segment/INDEPENDENT/GAP)",
		num(longest), num(target), plural(len(order), "part", "parts"), exempt)
	return v.result()
}

func (r *run) rulePartHoldBack() Result {
	pl := r.first
	td := float64(pl.targetDuration)
	if !pl.hasServerControl {
		if pl.isLL() {
			return fail("", "no EXT-X-SERVER-CONTROL: PART-HOLD-BACK is required with EXT-X-PART-INF")
		}
		return skip("", "no EXT-X-SERVER-CONTROL")
	}
	var v verdict
	checked := 0
	bound := func(attr string, factor float64, of string, base float64, why string) {
		s, ok := pl.sc[attr]
		if !ok {
			return
		}
		checked++
		f, err := strconv.ParseFloat(s, 64)
		switch {
		case err != nil:
			v.fail("%s=%q is not a number", attr, s)
		case f < factor*base-eps:
			v.fail("%s %s < %s × %s %s = %s%s", attr, num(f), num(factor), of, num(base), num(factor*base), why)
		default:
			v.note("%s %s ≥ %s × %s %s", attr, num(f), num(factor), of, num(base))
		}
	}
	if pl.isLL() {
		if _, ok := pl.sc["PART-HOLD-BACK"]; !ok {
			v.fail("no PART-HOLD-BACK although the playlist has EXT-X-PART-INF")
		}
		bound("PART-HOLD-BACK", 3, "PART-TARGET", pl.partTarget, " (Apple devices require 3×, AUTH 14.3)")
	}
	bound("HOLD-BACK", 3, "TD", td, "")
	bound("CAN-SKIP-UNTIL", 6, "TD", td, "")
	if checked == 0 && len(v.fails) == 0 {
		return skip("", "EXT-X-SERVER-CONTROL has no hold-back or skip attribute")
	}
	return v.result()
}

func (r *run) ruleServerControlStable() Result {
	base := r.first
	var v verdict
	pls := r.parsed()
	for i, pl := range pls[1:] {
		switch {
		case pl.serverControl != base.serverControl:
			v.fail("EXT-X-SERVER-CONTROL changed at reload %d: %q → %q (CoreMedia stops for good, mediamtx #6237)", i+2, base.serverControl, pl.serverControl)
		case pl.partInf != base.partInf:
			v.fail("EXT-X-PART-INF changed at reload %d: %q → %q", i+2, base.partInf, pl.partInf)
		case pl.targetDuration != base.targetDuration:
			v.fail("EXT-X-TARGETDURATION changed at reload %d: %d → %d", i+2, base.targetDuration, pl.targetDuration)
		default:
			continue
		}
		break
	}
	compared := 0
	for _, o := range r.others {
		switch {
		case o.pl == nil:
			continue
		case o.pl.serverControl != base.serverControl:
			v.fail("EXT-X-SERVER-CONTROL of %s %q differs from %s %q", name(o.url), o.pl.serverControl, name(r.primary()), base.serverControl)
		case o.pl.partInf != base.partInf:
			v.fail("EXT-X-PART-INF of %s %q differs from %s %q", name(o.url), o.pl.partInf, name(r.primary()), base.partInf)
		case o.pl.targetDuration != base.targetDuration:
			v.fail("EXT-X-TARGETDURATION of %s differs: %d, not %d", name(o.url), o.pl.targetDuration, base.targetDuration)
		}
		compared++
	}
	what := "SERVER-CONTROL, PART-INF and TARGETDURATION"
	if !base.hasServerControl && !base.hasPartInf {
		what = "TARGETDURATION (no SERVER-CONTROL or PART-INF)"
	}
	ev := what + " identical over " + plural(len(pls), "reload", "reloads")
	if compared > 0 {
		ev += " and " + plural(compared, "other rendition", "other renditions")
	}
	v.note("%s", ev)
	return v.result()
}

func (r *run) ruleTargetDuration() Result {
	if !r.first.hasTarget {
		return fail("", "no EXT-X-TARGETDURATION")
	}
	td := r.first.targetDuration
	seen := map[string]bool{}
	var v verdict
	var longest float64
	over := 0
	for _, pl := range r.parsed() {
		for _, s := range pl.segments {
			if seen[s.uri] {
				continue
			}
			seen[s.uri] = true
			longest = max(longest, s.duration)
			if rounded := int(math.Round(s.duration)); rounded > pl.targetDuration {
				if over++; over == 1 {
					v.fail("segment %s EXTINF %s rounds to %d > TARGETDURATION %d", name(s.uri), num(s.duration), rounded, pl.targetDuration)
				}
			}
		}
	}
	if len(seen) == 0 {
		return skip("", "no complete segment listed")
	}
	if over > 1 {
		v.fail("%d of %d segments too long", over, len(seen))
	}
	v.note("longest EXTINF %s rounds to %d ≤ TARGETDURATION %d over %s", num(longest), int(math.Round(longest)), td, plural(len(seen), "segment", "segments"))
	return v.result()
}

func (r *run) rulePDT() Result {
	ll := r.first.isLL()
	var v verdict
	seen := map[string]bool{}
	with, without := 0, 0
	firstless, misplaced, judged := 0, 0, 0
	var firstWithout string
	pls := r.parsed()
	for _, pl := range pls {
		if len(pl.segments) == 0 && len(pl.tail) == 0 {
			continue
		}
		judged++
		firstHas := pl.tailPDT
		if len(pl.segments) > 0 {
			firstHas = pl.segments[0].hasPDT
		}
		if !firstHas {
			firstless++
		}
		if pl.pdtAfterPart > 0 {
			misplaced++
		}
		for _, s := range pl.segments {
			if seen[s.uri] {
				continue
			}
			seen[s.uri] = true
			if s.hasPDT {
				with++
			} else if without++; firstWithout == "" {
				firstWithout = s.uri
			}
		}
	}
	if len(seen) == 0 {
		return skip("", "no complete segment listed")
	}
	if firstless > 0 {
		v.fail("no EXT-X-PROGRAM-DATE-TIME on the first segment in %d of %d reloads", firstless, judged)
	}
	if ll && without > 0 {
		v.fail("%d of %s without EXT-X-PROGRAM-DATE-TIME, e.g. %s (every segment of an LL stream needs one)",
			without, plural(len(seen), "segment", "segments"), name(firstWithout))
	}
	if misplaced > 0 {
		v.fail("EXT-X-PROGRAM-DATE-TIME after the first EXT-X-PART of its segment in %d of %d reloads (§4.4.4.9)", misplaced, judged)
	}
	v.note("EXT-X-PROGRAM-DATE-TIME on %d of %s over %s", with, plural(len(seen), "segment", "segments"), plural(len(pls), "reload", "reloads"))
	return v.result()
}

func (r *run) rulePreloadHint() Result {
	if !r.first.isLL() {
		return skip("", "no EXT-X-PART-INF: not a low-latency playlist")
	}
	var v verdict
	hintAt := map[position]string{}
	partAt := map[position]string{}
	live, with := 0, 0
	firstMissing := 0
	for i, pl := range r.parsed() {
		if pl.ended {
			if pl.hint != nil {
				v.fail("reload %d has EXT-X-PRELOAD-HINT with EXT-X-ENDLIST (§4.4.5.3)", i+1)
			}
		} else {
			live++
			if pl.hint != nil && pl.hint.typ == "PART" {
				with++
				if _, ok := hintAt[pl.next()]; !ok {
					hintAt[pl.next()] = pl.hint.uri
				}
			} else if firstMissing == 0 {
				firstMissing = i + 1
			}
		}
		pl.allParts(func(q position, pt part, _ bool) { partAt[q] = pt.uri })
	}
	if with < live {
		v.fail("no EXT-X-PRELOAD-HINT:TYPE=PART in %d of %d live playlists (first: reload %d)", live-with, live, firstMissing)
	}
	matched := 0
	var qs []position
	for q := range hintAt {
		qs = append(qs, q)
	}
	sort.Slice(qs, func(i, j int) bool {
		return qs[i].msn < qs[j].msn || (qs[i].msn == qs[j].msn && qs[i].part < qs[j].part)
	})
	for _, q := range qs {
		p, ok := partAt[q]
		if !ok {
			continue
		}
		if p != hintAt[q] {
			v.fail("hint %s for part %s, but the part was listed as %s", name(hintAt[q]), q, name(p))
			continue
		}
		matched++
	}
	if live > 0 {
		v.note("in %d of %d live playlists; %s later listed as EXT-X-PART with the same URI", with, live, plural(matched, "hint", "hints"))
	} else {
		v.note("no live playlist seen (EXT-X-ENDLIST) and no hint in an ended one")
	}
	if h := r.hinted; h != nil {
		bound := 3*r.pt + 500*time.Millisecond + r.cfg.Slack
		switch {
		case h.res == nil:
			v.note("hinted part not requested: %s", h.note)
		case !h.res.ok():
			v.fail("request for hinted part %s: %s (a 404 makes hls.js treat it as a gap)", name(h.uri), h.res.describe())
		case len(h.res.body) == 0:
			v.fail("hinted part %s answered 200 with an empty body", name(h.uri))
		case h.res.elapsed > bound:
			v.fail("hinted part %s took %s > 3 × PART-TARGET + 0.5s = %s", name(h.uri), seconds(h.res.elapsed), seconds(bound))
		default:
			v.note("hinted part requested early: 200 after %s", seconds(h.res.elapsed))
		}
	}
	return v.result()
}

func (r *run) ruleRenditionReports() Result {
	all := append(append([]string(nil), r.media...), r.elsewhere...)
	elsewhere := ""
	if len(r.elsewhere) > 0 {
		elsewhere = " (" + plural(len(r.elsewhere), "playlist", "playlists") + " on other hosts not fetched)"
	}
	switch {
	case r.mv == nil:
		return skip("", "media playlist URL given: the other renditions are unknown")
	case len(all) == 1:
		return skip("", "single rendition")
	}
	var v verdict
	check := func(plURL string, pl *mediaPlaylist) {
		reported := map[string]bool{}
		for _, rep := range pl.reports {
			if u, err := resolve(plURL, rep.uri); err == nil {
				reported[stripQuery(u)] = true
			}
		}
		for _, m := range all {
			if m != plURL && !reported[stripQuery(m)] {
				v.fail("%s has no EXT-X-RENDITION-REPORT for %s", name(plURL), name(m))
			}
		}
	}
	pls := r.parsed()
	check(r.primary(), pls[len(pls)-1])
	n := 1
	for _, o := range r.others {
		switch {
		case !o.res.ok():
			v.fail("%s: %s", name(o.url), o.res.describe())
			continue
		case o.pl == nil:
			v.fail("%s: malformed playlist: %v", name(o.url), o.perr)
			continue
		}
		check(o.url, o.pl)
		n++
	}
	v.note("each of %d media playlists reports the other %s%s", n, plural(len(all)-1, "rendition", "renditions"), elsewhere)
	return v.result()
}

func stripQuery(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.RawQuery, p.Fragment = "", ""
	return p.String()
}

func (r *run) ruleCodecs() Result {
	if r.mv == nil {
		return skip("", "media playlist URL given: no multivariant playlist")
	}
	var v verdict
	codecs := map[string]bool{}
	for _, vr := range r.mv.variants {
		c := vr.attrs["CODECS"]
		if c == "" {
			v.fail("variant %s has no CODECS", name(vr.uri))
			continue
		}
		for _, one := range strings.Split(c, ",") {
			codecs[strings.TrimSpace(one)] = true
		}
	}
	audio, withChannels := 0, 0
	for _, m := range r.mv.renditions {
		if m.attrs["TYPE"] != "AUDIO" {
			continue
		}
		audio++
		if m.attrs["CHANNELS"] == "" {
			v.fail("audio EXT-X-MEDIA %q has no CHANNELS", m.attrs["NAME"])
			continue
		}
		withChannels++
	}
	list := make([]string, 0, len(codecs))
	for c := range codecs {
		list = append(list, c)
	}
	sort.Strings(list)
	ev := "CODECS " + strings.Join(list, ",") + " on " + plural(len(r.mv.variants), "variant", "variants")
	var odd []string
	for _, c := range list {
		if !knownCodec(c) {
			odd = append(odd, c)
		}
	}
	if len(odd) > 0 {
		ev += " (not recognised as RFC 6381 strings: " + strings.Join(odd, ",") + ")"
	}
	if audio > 0 {
		ev += "; CHANNELS on " + plural(withChannels, "audio rendition", "audio renditions")
	} else {
		ev += "; no audio EXT-X-MEDIA"
	}
	v.note("%s", ev)
	return v.result()
}

// codecPrefixes are the RFC 6381 forms players know, audio first.
var codecPrefixes = []string{
	"mp4a.40.", "mp4a.69", "mp4a.6b", "mp4a.6B", "opus", "Opus", "flac", "fLaC", "ac-3", "ec-3", "ac-4", "alac", "mhm1.", "mha1.",
	"avc1.", "avc3.", "hvc1.", "hev1.", "dvh1.", "dvhe.", "av01.", "vp09.", "vp8", "mp4v.", "stpp.", "wvtt",
}

func knownCodec(c string) bool {
	for _, p := range codecPrefixes {
		if strings.HasPrefix(c, p) && c != "mp4a.40." {
			return true
		}
	}
	return false
}
