package check

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The parser here is deliberately tolerant: a conformance checker must read
// a playlist that breaks the rules in order to say which rule it breaks, so
// it keeps what a player's parser would reject or drop (raw SERVER-CONTROL
// and PART-INF text, parts longer than PART-TARGET, misplaced tags, GAP).

// maxPlaylist bounds a playlist read from the network.
const maxPlaylist = 4 << 20

// maxEntries bounds the segments and parts one playlist may hold.
const maxEntries = 100000

var errNotPlaylist = errors.New("not an HLS playlist (no #EXTM3U header)")

// part is one EXT-X-PART.
type part struct {
	duration    float64
	uri         string
	byteRange   string
	independent bool
	gap         bool
}

// key identifies a part: byte-range parts share their URI.
func (pt part) key() string {
	if pt.byteRange == "" {
		return pt.uri
	}
	return pt.uri + "@" + pt.byteRange
}

// segment is one complete media segment (it has its URI line).
type segment struct {
	msn           uint64
	duration      float64
	uri           string
	hasPDT        bool
	pdt           time.Time
	discontinuity bool
	gap           bool
	parts         []part
}

// hint is an EXT-X-PRELOAD-HINT.
type hint struct {
	typ            string
	uri            string
	byteRangeStart bool
}

// report is an EXT-X-RENDITION-REPORT.
type report struct {
	uri     string
	lastMSN string
}

// mediaPlaylist is one parsed media playlist.
type mediaPlaylist struct {
	version        int
	hasTarget      bool
	targetDuration int
	mediaSequence  uint64
	// serverControl and partInf are the attribute text as written, so that
	// reloads can be compared byte for byte.
	serverControl    string
	hasServerControl bool
	sc               map[string]string
	partInf          string
	hasPartInf       bool
	partTarget       float64
	hasSkip          bool
	skipped          uint64
	mapURI           string
	segments         []segment
	// tail holds the parts of the segment in progress.
	tail    []part
	tailPDT bool
	hint    *hint
	reports []report
	ended   bool
	// pdtAfterPart counts PROGRAM-DATE-TIME tags written after the first
	// EXT-X-PART of their segment (§4.4.4.9 wants them before).
	pdtAfterPart int
}

// isLL reports whether the playlist is a Low-Latency one (it has parts).
func (p *mediaPlaylist) isLL() bool { return p.hasPartInf }

// nextMSN is the media sequence number of the segment in progress.
func (p *mediaPlaylist) nextMSN() uint64 {
	return p.mediaSequence + p.skipped + uint64(len(p.segments))
}

// next is the position of the first part not yet listed: what a client
// following the live edge asks for next.
func (p *mediaPlaylist) next() position {
	return position{msn: p.nextMSN(), part: uint64(len(p.tail))}
}

// position is a (media sequence number, part index) pair.
type position struct {
	msn, part uint64
}

func (q position) String() string { return fmt.Sprintf("%d.%d", q.msn, q.part) }

// has reports whether the playlist satisfies a blocking request for part
// q.part of segment q.msn: it lists that part, or the segment is complete
// and the part index runs past its end (which means part 0 of the next
// segment, §6.2.5.2). An ended playlist satisfies everything.
func (p *mediaPlaylist) has(q position) bool {
	if p.ended {
		return true
	}
	first := p.mediaSequence + p.skipped
	next := p.nextMSN()
	msn, pt := q.msn, q.part
	if msn < next {
		if msn < first {
			return true
		}
		s := &p.segments[msn-first]
		if len(s.parts) == 0 || pt < uint64(len(s.parts)) {
			return true
		}
		msn, pt = msn+1, 0
		if msn < next {
			return true
		}
	}
	return msn == next && pt < uint64(len(p.tail))
}

// hasSegmentOrPart0 reports whether segment msn is complete or its part 0
// is listed: what `_HLS_msn=msn` alone must wait for.
func (p *mediaPlaylist) hasSegmentOrPart0(msn uint64) bool {
	return p.has(position{msn: msn})
}

// allParts calls f for every listed part with its position, complete
// segments first, then the tail. last is set for the final part of a
// complete segment.
func (p *mediaPlaylist) allParts(f func(q position, pt part, last bool)) {
	for _, s := range p.segments {
		for i, pt := range s.parts {
			f(position{s.msn, uint64(i)}, pt, i == len(s.parts)-1)
		}
	}
	for i, pt := range p.tail {
		f(position{p.nextMSN(), uint64(i)}, pt, false)
	}
}

// parseMedia parses a media playlist.
func parseMedia(b []byte) (*mediaPlaylist, error) {
	if len(b) > maxPlaylist {
		return nil, fmt.Errorf("playlist larger than %d bytes", maxPlaylist)
	}
	lines, err := playlistLines(b)
	if err != nil {
		return nil, err
	}
	p := &mediaPlaylist{}
	var (
		cur     segment // the segment being assembled
		hasInf  bool
		entries int
	)
	for n, l := range lines {
		if l == "" || n == 0 {
			continue
		}
		if l[0] != '#' {
			if !hasInf {
				return nil, fmt.Errorf("line %d: segment URI %q without EXTINF", n+1, l)
			}
			cur.uri = l
			p.segments = append(p.segments, cur)
			cur, hasInf = segment{}, false
			continue
		}
		tag, val, _ := strings.Cut(l, ":")
		switch tag {
		case "#EXT-X-VERSION":
			p.version, _ = strconv.Atoi(val)
		case "#EXT-X-TARGETDURATION":
			td, err := strconv.Atoi(val)
			if err != nil || td < 0 {
				return nil, fmt.Errorf("line %d: EXT-X-TARGETDURATION %q is not a non-negative integer", n+1, val)
			}
			p.hasTarget, p.targetDuration = true, td
		case "#EXT-X-MEDIA-SEQUENCE":
			ms, err := strconv.ParseUint(val, 10, 63)
			if err != nil {
				return nil, fmt.Errorf("line %d: EXT-X-MEDIA-SEQUENCE %q", n+1, val)
			}
			p.mediaSequence = ms
		case "#EXT-X-SERVER-CONTROL":
			p.hasServerControl, p.serverControl, p.sc = true, val, parseAttrs(val)
		case "#EXT-X-PART-INF":
			p.hasPartInf, p.partInf = true, val
			pt, err := attrFloat(parseAttrs(val), "PART-TARGET")
			if err != nil || pt <= 0 {
				return nil, fmt.Errorf("line %d: EXT-X-PART-INF without a positive PART-TARGET", n+1)
			}
			p.partTarget = pt
		case "#EXT-X-SKIP":
			s, err := strconv.ParseUint(parseAttrs(val)["SKIPPED-SEGMENTS"], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("line %d: EXT-X-SKIP without SKIPPED-SEGMENTS", n+1)
			}
			p.hasSkip, p.skipped = true, s
		case "#EXT-X-MAP":
			if p.mapURI == "" {
				p.mapURI = parseAttrs(val)["URI"]
			}
		case "#EXT-X-PROGRAM-DATE-TIME":
			t, err := parsePDT(val)
			if err != nil {
				return nil, fmt.Errorf("line %d: EXT-X-PROGRAM-DATE-TIME %q", n+1, val)
			}
			if len(cur.parts) > 0 {
				p.pdtAfterPart++
			}
			cur.hasPDT, cur.pdt = true, t
		case "#EXT-X-DISCONTINUITY":
			cur.discontinuity = true
		case "#EXT-X-GAP":
			cur.gap = true
		case "#EXTINF":
			d, _, _ := strings.Cut(val, ",")
			f, err := strconv.ParseFloat(strings.TrimSpace(d), 64)
			if err != nil || f < 0 {
				return nil, fmt.Errorf("line %d: EXTINF %q", n+1, val)
			}
			cur.duration, hasInf = f, true
		case "#EXT-X-PART":
			if entries++; entries > maxEntries {
				return nil, fmt.Errorf("more than %d parts", maxEntries)
			}
			a := parseAttrs(val)
			d, err := attrFloat(a, "DURATION")
			if err != nil || a["URI"] == "" {
				return nil, fmt.Errorf("line %d: EXT-X-PART without DURATION or URI", n+1)
			}
			cur.parts = append(cur.parts, part{duration: d, uri: a["URI"], byteRange: a["BYTERANGE"], independent: a["INDEPENDENT"] == "YES", gap: a["GAP"] == "YES"})
		case "#EXT-X-PRELOAD-HINT":
			a := parseAttrs(val)
			_, brs := a["BYTERANGE-START"]
			p.hint = &hint{typ: a["TYPE"], uri: a["URI"], byteRangeStart: brs}
		case "#EXT-X-RENDITION-REPORT":
			a := parseAttrs(val)
			p.reports = append(p.reports, report{uri: a["URI"], lastMSN: a["LAST-MSN"]})
		case "#EXT-X-ENDLIST":
			p.ended = true
		case "#EXT-X-STREAM-INF":
			return nil, errors.New("a multivariant playlist, not a media playlist")
		}
	}
	if len(p.segments) > maxEntries {
		return nil, fmt.Errorf("more than %d segments", maxEntries)
	}
	if hasInf {
		return nil, errors.New("EXTINF without a segment URI at the end")
	}
	first := p.mediaSequence + p.skipped
	for i := range p.segments {
		p.segments[i].msn = first + uint64(i)
	}
	p.tail, p.tailPDT = cur.parts, cur.hasPDT
	return p, nil
}

// variant is one EXT-X-STREAM-INF and its URI.
type variant struct {
	attrs map[string]string
	uri   string
}

// rendition is one EXT-X-MEDIA.
type rendition struct {
	attrs map[string]string
}

// multivariant is a parsed multivariant playlist.
type multivariant struct {
	variants   []variant
	renditions []rendition
}

// mediaURIs lists the media playlist URIs in order of appearance, each once:
// EXT-X-MEDIA URIs first, then variant URIs.
func (m *multivariant) mediaURIs() []string {
	var out []string
	seen := map[string]bool{}
	add := func(u string) {
		if u != "" && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	for _, r := range m.renditions {
		add(r.attrs["URI"])
	}
	for _, v := range m.variants {
		add(v.uri)
	}
	return out
}

// isMultivariant reports whether b looks like a multivariant playlist.
func isMultivariant(b []byte) bool {
	return bytes.Contains(b, []byte("#EXT-X-STREAM-INF")) ||
		(bytes.Contains(b, []byte("#EXT-X-MEDIA:")) && !bytes.Contains(b, []byte("#EXTINF")) && !bytes.Contains(b, []byte("#EXT-X-TARGETDURATION")))
}

// parseMultivariant parses a multivariant playlist.
func parseMultivariant(b []byte) (*multivariant, error) {
	if len(b) > maxPlaylist {
		return nil, fmt.Errorf("playlist larger than %d bytes", maxPlaylist)
	}
	lines, err := playlistLines(b)
	if err != nil {
		return nil, err
	}
	m := &multivariant{}
	var pending map[string]string
	for n, l := range lines {
		if l == "" || n == 0 {
			continue
		}
		if l[0] != '#' {
			if pending == nil {
				return nil, fmt.Errorf("line %d: URI %q without EXT-X-STREAM-INF", n+1, l)
			}
			m.variants = append(m.variants, variant{attrs: pending, uri: l})
			pending = nil
			continue
		}
		tag, val, _ := strings.Cut(l, ":")
		switch tag {
		case "#EXT-X-STREAM-INF":
			pending = parseAttrs(val)
		case "#EXT-X-MEDIA":
			m.renditions = append(m.renditions, rendition{attrs: parseAttrs(val)})
		}
		if len(m.variants)+len(m.renditions) > maxEntries {
			return nil, fmt.Errorf("more than %d entries", maxEntries)
		}
	}
	if len(m.variants) == 0 {
		return nil, errors.New("multivariant playlist without any variant")
	}
	return m, nil
}

// playlistLines splits b into trimmed lines and checks the header.
func playlistLines(b []byte) ([]string, error) {
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	if len(lines) == 0 || lines[0] != "#EXTM3U" {
		return nil, errNotPlaylist
	}
	return lines, nil
}

// parseAttrs parses an attribute list (NAME=VALUE,NAME="quoted, value").
// Quotes are removed from quoted values.
func parseAttrs(s string) map[string]string {
	out := make(map[string]string)
	for s != "" {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		k = strings.TrimSpace(k)
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				v, rest = rest[1:], ""
			} else {
				v, rest = rest[1:1+end], rest[2+end:]
			}
			_, rest, _ = strings.Cut(rest, ",")
		} else {
			v, rest, _ = strings.Cut(rest, ",")
		}
		out[k] = strings.TrimSpace(v)
		s = rest
	}
	return out
}

func attrFloat(a map[string]string, k string) (float64, error) {
	v, ok := a[k]
	if !ok {
		return 0, fmt.Errorf("no %s", k)
	}
	return strconv.ParseFloat(v, 64)
}

// parsePDT parses an ISO 8601 date-time as HLS writes it.
func parsePDT(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad date-time %q", v)
}
