package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// errMultivariant is returned by parse for a multivariant playlist.
var errMultivariant = errors.New("multivariant playlist")

// malformedError is a playlist the loader could not make sense of.
type malformedError struct{ msg string }

func (e *malformedError) Error() string { return "malformed playlist: " + e.msg }

// The constant messages keep the parser free of allocations.
var (
	errNoHeader     = &malformedError{"no #EXTM3U header"}
	errNoTarget     = &malformedError{"no EXT-X-TARGETDURATION"}
	errBadNumber    = &malformedError{"bad number"}
	errBadPDT       = &malformedError{"bad EXT-X-PROGRAM-DATE-TIME"}
	errBadPart      = &malformedError{"EXT-X-PART without DURATION or URI"}
	errURIWithout   = &malformedError{"segment URI without EXTINF"}
	errDangling     = &malformedError{"EXTINF without a segment URI"}
	errPartsAfter   = &malformedError{"EXT-X-PART after EXTINF in one segment"}
	errNoTimeline   = &malformedError{"segments without EXT-X-PROGRAM-DATE-TIME"}
	errTooManySegms = &malformedError{"more than 100000 segments or parts"}
)

// maxEntries bounds what one playlist may make the parser keep.
const maxEntries = 100000

// mediaPlaylist is a parsed media playlist. URIs are slices of the body it
// was parsed from and are valid until that body is reused. Times are Unix
// nanoseconds of the audio (EXT-X-PROGRAM-DATE-TIME); the playlist keeps its
// slices between parses so that steady-state parsing does not allocate.
type mediaPlaylist struct {
	playlistTags
	timed bool // starts below come from PROGRAM-DATE-TIME
	segs  []segment
	parts []part

	resume checkpoint // where the next parse may start
}

// playlistTags are the playlist-wide tags.
type playlistTags struct {
	targetDuration time.Duration
	partTarget     time.Duration // 0: no EXT-X-PART-INF
	partHoldBack   time.Duration
	holdBack       time.Duration
	canSkipUntil   time.Duration
	canBlockReload bool
	mediaSequence  int64
	skipped        int64
	ended          bool
	mapURI         []byte // nil: no EXT-X-MAP
	hint           []byte // URI of EXT-X-PRELOAD-HINT TYPE=PART; nil: none
	hintByteRange  bool   // the hint carries BYTERANGE-START
}

// checkpoint is the parser's state at the end of the last complete segment
// of the body parsed last: off bytes into it, a copy of which is prefix.
// A blocking reload of a live playlist repeats everything up to its newest
// segment, so parse checks that prefix and goes on from there: it reads
// the few lines of the newest parts instead of the whole playlist. What
// parsing after the checkpoint does never touches the segments and parts
// before it, and fillTimes recomputes every derived time, so the result is
// the same as a full parse. The URIs kept from before the checkpoint point
// into the old body's storage, so the new body must lie in the same storage
// (base), where its bytes are the same: the listener reads every playlist
// into one reused buffer.
type checkpoint struct {
	ok            bool
	off           int
	base          *byte // the body's first byte
	prefix        []byte
	tags          playlistTags
	nSegs, nParts int
	haveTarget    bool
	nextMSN       int64
	started       bool
}

// segment is one media segment; the last one may be incomplete (parts only,
// no EXTINF yet).
type segment struct {
	msn      int64
	start    int64         // Unix ns
	dur      time.Duration // EXTINF, or the sum of its parts when incomplete
	uri      []byte
	complete bool
	hasPDT   bool
	p0, p1   int // its parts: parts[p0:p1]
}

func (s *segment) end() int64 { return s.start + int64(s.dur) }

// part is one EXT-X-PART.
type part struct {
	start int64 // Unix ns
	dur   time.Duration
	uri   []byte
	gap   bool
}

func (p *part) end() int64 { return p.start + int64(p.dur) }

// reset empties pl, keeping its storage.
func (pl *mediaPlaylist) reset() {
	segs, parts, prefix := pl.segs[:0], pl.parts[:0], pl.resume.prefix[:0]
	*pl = mediaPlaylist{segs: segs, parts: parts}
	pl.resume.prefix = prefix
}

// parse reads a media playlist. It returns errMultivariant for a
// multivariant playlist and a *malformedError for anything else it refuses;
// pl is then empty.
//
// When body starts with the bytes up to the checkpoint of the body parsed
// before, parsing goes on from the checkpoint (see checkpoint).
func (pl *mediaPlaylist) parse(body []byte) (err error) {
	var (
		header      bool
		haveTarget  bool
		pendingInf  time.Duration
		haveInf     bool
		pendingPDT  int64
		havePDT     bool
		nextMSN     int64
		started     bool // nextMSN was set from MEDIA-SEQUENCE and SKIP
		openSegment bool // the last entry of segs is still collecting parts
	)
	full := body
	ck := pl.resume
	resumed := ck.ok && ck.off <= len(body) && &body[0] == ck.base && bytes.Equal(body[:ck.off], ck.prefix)
	next := checkpoint{off: -1} // the checkpoint this body gives
	if resumed {
		pl.playlistTags, pl.timed = ck.tags, false
		pl.segs, pl.parts = pl.segs[:ck.nSegs], pl.parts[:ck.nParts]
		header, haveTarget, nextMSN, started = true, ck.haveTarget, ck.nextMSN, ck.started
		body = body[ck.off:]
		next = ck
	} else {
		pl.reset()
	}
	pl.resume.ok = false
	defer func() {
		if err != nil {
			pl.reset()
			return
		}
		pl.commitCheckpoint(full, &next, ck.off, resumed)
	}()
	open := func() *segment {
		if !openSegment {
			if !started {
				nextMSN, started = pl.mediaSequence+pl.skipped, true
			}
			pl.segs = append(pl.segs, segment{msn: nextMSN, p0: len(pl.parts), p1: len(pl.parts)})
			nextMSN++
			openSegment = true
		}
		s := &pl.segs[len(pl.segs)-1]
		if havePDT {
			s.start, s.hasPDT, havePDT = pendingPDT, true, false
		}
		return s
	}
	for len(body) > 0 {
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		for len(line) > 0 && (line[len(line)-1] == '\r' || line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
			line = line[:len(line)-1]
		}
		if len(line) == 0 {
			continue
		}
		if !header {
			if !bytes.Equal(line, []byte("#EXTM3U")) {
				return errNoHeader
			}
			header = true
			continue
		}
		if len(pl.segs)+len(pl.parts) > maxEntries {
			return errTooManySegms
		}
		if line[0] != '#' {
			if !haveInf {
				return errURIWithout
			}
			s := open()
			s.dur, s.uri, s.complete = pendingInf, line, true
			haveInf, openSegment = false, false
			if len(body) > 0 || (len(full) > 0 && full[len(full)-1] == '\n') {
				next = checkpoint{
					off: len(full) - len(body), base: &full[0], tags: pl.playlistTags,
					nSegs: len(pl.segs), nParts: len(pl.parts),
					haveTarget: haveTarget, nextMSN: nextMSN, started: started,
				}
			}
			continue
		}
		tag, val := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			tag, val = line[:i], line[i+1:]
		}
		switch string(tag) {
		case "#EXT-X-STREAM-INF", "#EXT-X-I-FRAME-STREAM-INF":
			return errMultivariant
		case "#EXT-X-TARGETDURATION":
			d, ok := parseDecimal(val)
			if !ok {
				return errBadNumber
			}
			pl.targetDuration, haveTarget = d, true
		case "#EXT-X-MEDIA-SEQUENCE":
			n, ok := parseInt(val)
			if !ok {
				return errBadNumber
			}
			pl.mediaSequence = n
		case "#EXT-X-SKIP":
			for k, v, rest, ok := nextAttr(val); ok; k, v, rest, ok = nextAttr(rest) {
				if string(k) == "SKIPPED-SEGMENTS" {
					n, ok := parseInt(v)
					if !ok {
						return errBadNumber
					}
					pl.skipped = n
				}
			}
		case "#EXT-X-SERVER-CONTROL":
			for k, v, rest, ok := nextAttr(val); ok; k, v, rest, ok = nextAttr(rest) {
				var dst *time.Duration
				switch string(k) {
				case "CAN-BLOCK-RELOAD":
					pl.canBlockReload = string(v) == "YES"
				case "PART-HOLD-BACK":
					dst = &pl.partHoldBack
				case "HOLD-BACK":
					dst = &pl.holdBack
				case "CAN-SKIP-UNTIL":
					dst = &pl.canSkipUntil
				}
				if dst != nil {
					d, ok := parseDecimal(v)
					if !ok {
						return errBadNumber
					}
					*dst = d
				}
			}
		case "#EXT-X-PART-INF":
			for k, v, rest, ok := nextAttr(val); ok; k, v, rest, ok = nextAttr(rest) {
				if string(k) == "PART-TARGET" {
					d, ok := parseDecimal(v)
					if !ok {
						return errBadNumber
					}
					pl.partTarget = d
				}
			}
		case "#EXT-X-MAP":
			for k, v, rest, ok := nextAttr(val); ok; k, v, rest, ok = nextAttr(rest) {
				if string(k) == "URI" {
					pl.mapURI = v
				}
			}
		case "#EXT-X-PROGRAM-DATE-TIME":
			t, ok := parseDateTime(val)
			if !ok {
				return errBadPDT
			}
			if openSegment {
				// Placed after the segment's first part (the spec wants it
				// before): it still dates the segment it stands in.
				if s := &pl.segs[len(pl.segs)-1]; !s.hasPDT {
					s.start, s.hasPDT = t, true
				}
				break
			}
			pendingPDT, havePDT = t, true
		case "#EXTINF":
			dur, _, _ := bytes.Cut(val, []byte(","))
			d, ok := parseDecimal(dur)
			if !ok {
				return errBadNumber
			}
			pendingInf, haveInf = d, true
		case "#EXT-X-PART":
			if haveInf {
				return errPartsAfter
			}
			var p part
			var haveDur bool
			for k, v, rest, ok := nextAttr(val); ok; k, v, rest, ok = nextAttr(rest) {
				switch string(k) {
				case "DURATION":
					d, ok := parseDecimal(v)
					if !ok {
						return errBadNumber
					}
					p.dur, haveDur = d, true
				case "URI":
					p.uri = v
				case "GAP":
					p.gap = string(v) == "YES"
				}
			}
			if !haveDur || len(p.uri) == 0 {
				return errBadPart
			}
			s := open()
			pl.parts = append(pl.parts, p)
			s.p1 = len(pl.parts)
		case "#EXT-X-PRELOAD-HINT":
			var uri []byte
			isPart, byteRange := false, false
			for k, v, rest, ok := nextAttr(val); ok; k, v, rest, ok = nextAttr(rest) {
				switch string(k) {
				case "TYPE":
					isPart = string(v) == "PART"
				case "URI":
					uri = v
				case "BYTERANGE-START", "BYTERANGE-LENGTH":
					byteRange = true
				}
			}
			if isPart && len(uri) > 0 {
				pl.hint, pl.hintByteRange = uri, byteRange
			}
		case "#EXT-X-ENDLIST":
			pl.ended = true
		}
	}
	switch {
	case !header:
		return errNoHeader
	case !haveTarget:
		return errNoTarget
	case haveInf:
		return errDangling
	}
	return pl.fillTimes()
}

// commitCheckpoint keeps next as the checkpoint for the following parse of
// body. Only timed playlists get one: applyAnchor rewrites the times of an
// untimed one, which a full parse would not carry over. The prefix is
// copied only past what the previous checkpoint (at prevOff, which body
// matched when resumed) already holds.
func (pl *mediaPlaylist) commitCheckpoint(body []byte, next *checkpoint, prevOff int, resumed bool) {
	if next.off < 0 || !pl.timed {
		return
	}
	prefix := pl.resume.prefix
	switch {
	case resumed && next.off == prevOff:
	case resumed && next.off > prevOff:
		prefix = append(prefix[:prevOff], body[prevOff:next.off]...)
	default:
		prefix = append(prefix[:0], body[:next.off]...)
	}
	pl.resume = *next
	pl.resume.prefix, pl.resume.ok = prefix, true
}

// fillTimes gives every segment and part a start time: from its own
// PROGRAM-DATE-TIME, else carried forward from the segment before it (and
// backward for segments before the first PROGRAM-DATE-TIME). A playlist with
// no PROGRAM-DATE-TIME at all is left untimed for applyAnchor.
func (pl *mediaPlaylist) fillTimes() error {
	first := -1
	for i := range pl.segs {
		s := &pl.segs[i]
		if !s.complete {
			s.dur = 0
			for _, p := range pl.parts[s.p0:s.p1] {
				s.dur += p.dur
			}
			if i != len(pl.segs)-1 {
				return errDangling
			}
		}
		if s.hasPDT {
			if first < 0 {
				first = i
			}
		} else if first >= 0 {
			prev := &pl.segs[i-1]
			s.start = prev.end()
		}
	}
	if first < 0 {
		pl.timed = false
		return nil
	}
	for i := first - 1; i >= 0; i-- {
		pl.segs[i].start = pl.segs[i+1].start - int64(pl.segs[i].dur)
	}
	pl.timed = true
	pl.fillParts()
	return nil
}

// applyAnchor times an untimed playlist from a known start of segment msn
// (from an earlier playlist). It reports whether msn was in the playlist.
func (pl *mediaPlaylist) applyAnchor(msn, start int64) bool {
	if len(pl.segs) == 0 {
		return false
	}
	i := msn - pl.segs[0].msn
	if i < 0 || i >= int64(len(pl.segs)) {
		return false
	}
	pl.segs[i].start = start
	for j := i + 1; j < int64(len(pl.segs)); j++ {
		pl.segs[j].start = pl.segs[j-1].end()
	}
	for j := i - 1; j >= 0; j-- {
		pl.segs[j].start = pl.segs[j+1].start - int64(pl.segs[j].dur)
	}
	pl.fillParts()
	return true
}

func (pl *mediaPlaylist) fillParts() {
	for i := range pl.segs {
		s := &pl.segs[i]
		t := s.start
		for j := s.p0; j < s.p1; j++ {
			pl.parts[j].start = t
			t += int64(pl.parts[j].dur)
		}
	}
}

// seg returns segment msn, or nil.
func (pl *mediaPlaylist) seg(msn int64) *segment {
	if len(pl.segs) == 0 {
		return nil
	}
	i := msn - pl.segs[0].msn
	if i < 0 || i >= int64(len(pl.segs)) {
		return nil
	}
	return &pl.segs[i]
}

// lastMSN is the media sequence number of the last (maybe incomplete)
// segment, or mediaSequence-1 for an empty playlist.
func (pl *mediaPlaylist) lastMSN() int64 {
	if len(pl.segs) == 0 {
		return pl.mediaSequence + pl.skipped - 1
	}
	return pl.segs[len(pl.segs)-1].msn
}

// partPos names a part: part idx of segment msn.
type partPos struct {
	msn int64
	idx int
}

// nextPart is the part that comes after the last one listed: what a client
// asks for with _HLS_msn/_HLS_part, and what the preload hint names. When
// the last segment is complete it is part 0 of the next segment.
func (pl *mediaPlaylist) nextPart() partPos {
	if len(pl.segs) == 0 {
		return partPos{msn: pl.mediaSequence + pl.skipped}
	}
	s := &pl.segs[len(pl.segs)-1]
	if s.complete {
		return partPos{msn: s.msn + 1}
	}
	return partPos{msn: s.msn, idx: s.p1 - s.p0}
}

// has reports whether part p, or anything after it, is listed.
func (pl *mediaPlaylist) has(p partPos) bool {
	last := pl.nextPart()
	return last.msn > p.msn || (last.msn == p.msn && last.idx > p.idx)
}

// liveEdge is the end of the newest listed media, in parts (withParts) or in
// complete segments only.
func (pl *mediaPlaylist) liveEdge(withParts bool) int64 {
	for i := len(pl.segs) - 1; i >= 0; i-- {
		s := &pl.segs[i]
		if s.complete {
			return s.end()
		}
		if withParts && s.p1 > s.p0 {
			return pl.parts[s.p1-1].end()
		}
	}
	return 0
}

// nextAttr splits the first KEY=VALUE off an attribute list. Quoted values
// are returned without their quotes.
func nextAttr(b []byte) (key, val, rest []byte, ok bool) {
	for len(b) > 0 && (b[0] == ' ' || b[0] == ',') {
		b = b[1:]
	}
	if len(b) == 0 {
		return nil, nil, nil, false
	}
	eq := bytes.IndexByte(b, '=')
	if eq <= 0 {
		return nil, nil, nil, false
	}
	key, b = b[:eq], b[eq+1:]
	if len(b) > 0 && b[0] == '"' {
		end := bytes.IndexByte(b[1:], '"')
		if end < 0 {
			return nil, nil, nil, false
		}
		return key, b[1 : 1+end], b[2+end:], true
	}
	if c := bytes.IndexByte(b, ','); c >= 0 {
		return key, b[:c], b[c+1:], true
	}
	return key, b, nil, true
}

// parseInt reads a non-negative decimal integer.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseDecimal reads a non-negative decimal-floating-point number of
// seconds ("1.06667", "4") as a duration, to the nanosecond.
func parseDecimal(b []byte) (time.Duration, bool) {
	ip, fp, hasDot := bytes.Cut(b, []byte("."))
	if len(ip) == 0 && len(fp) == 0 {
		return 0, false
	}
	var secs int64
	if len(ip) > 0 {
		var ok bool
		if secs, ok = parseInt(ip); !ok || secs > 1<<32 {
			return 0, false
		}
	}
	var ns int64
	if hasDot {
		scale := int64(1e8)
		for _, c := range fp {
			if c < '0' || c > '9' {
				return 0, false
			}
			ns += int64(c-'0') * scale
			scale /= 10
		}
	}
	return time.Duration(secs)*time.Second + time.Duration(ns), true
}

// parseDateTime reads an ISO 8601 date-time with a time zone, as
// EXT-X-PROGRAM-DATE-TIME has it ("2026-01-02T15:04:05.123Z",
// "…05+02:00"), into Unix nanoseconds, without allocating.
func parseDateTime(b []byte) (int64, bool) {
	num := func(b []byte) (int, bool) {
		n, ok := parseInt(b)
		return int(n), ok
	}
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 {
		return 0, false
	}
	rest := b[19:]
	var ns int64
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		scale := int64(1e8)
		for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
			ns += int64(rest[i]-'0') * scale
			scale /= 10
		}
		if i == 1 {
			return 0, false
		}
		rest = rest[i:]
	}
	var off int64
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case (len(rest) == 6 && rest[3] == ':') || len(rest) == 5:
		if rest[0] != '+' && rest[0] != '-' {
			return 0, false
		}
		oh, ok1 := num(rest[1:3])
		om, ok2 := num(rest[len(rest)-2:])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		off = int64(oh*3600+om*60) * 1e9
		if rest[0] == '-' {
			off = -off
		}
	default:
		return 0, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, s, int(ns), time.UTC).UnixNano() - off, true
}

// variantURI picks the media playlist a player would load from a
// multivariant playlist: the default audio rendition that has a URI, else
// the first audio rendition with one, else the first variant stream.
func variantURI(body []byte) (string, error) {
	var firstAudio, defaultAudio, firstVariant string
	inf := false
	for line := range bytes.Lines(body) {
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0:
		case bytes.HasPrefix(line, []byte("#EXT-X-MEDIA:")):
			var typ, uri []byte
			def := false
			for k, v, rest, ok := nextAttr(line[len("#EXT-X-MEDIA:"):]); ok; k, v, rest, ok = nextAttr(rest) {
				switch string(k) {
				case "TYPE":
					typ = v
				case "URI":
					uri = v
				case "DEFAULT":
					def = string(v) == "YES"
				}
			}
			if string(typ) == "AUDIO" && len(uri) > 0 {
				if firstAudio == "" {
					firstAudio = string(uri)
				}
				if def && defaultAudio == "" {
					defaultAudio = string(uri)
				}
			}
		case bytes.HasPrefix(line, []byte("#EXT-X-STREAM-INF")):
			inf = true
		case line[0] == '#':
		default:
			if inf && firstVariant == "" {
				firstVariant = string(line)
			}
			inf = false
		}
	}
	switch {
	case defaultAudio != "":
		return defaultAudio, nil
	case firstAudio != "":
		return firstAudio, nil
	case firstVariant != "":
		return firstVariant, nil
	}
	return "", fmt.Errorf("multivariant playlist names no media playlist")
}
