package check

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// directiveProbe is one blocking request sent to test a rule of §2.
type directiveProbe struct {
	q        position
	withPart bool
	from     *mediaPlaylist // the playlist the request was derived from
	res      *response
	pl       *mediaPlaylist // the answer, when it parsed
}

// hintedProbe is a request for the preload-hinted part before it exists.
type hintedProbe struct {
	uri  string
	note string // why it was not sent
	res  *response
}

// mediaProbe is what was fetched of the media objects.
type mediaProbe struct {
	note       string // why nothing was fetched
	gets       []*response
	part       *response // GET of a part (or, lacking parts, a segment)
	head       *response
	rangeStart *response // bytes=0-99
	openEnded  *response // bytes=N-9007199254740991
	openFrom   int
}

// pairProbe is two renderings of one playlist version: plain and gzip, or
// full and delta.
type pairProbe struct {
	a, b  *response
	tries int
	note  string
}

// probe sends the probes that need the live playlist while it is followed.
func (r *run) probe(ctx context.Context) {
	r.probeRenditions(ctx)
	if r.llStream {
		r.probePartAlone(ctx)
		r.probeTooFar(ctx)
		r.probeHinted(ctx)
		r.probeMSNOnly(ctx)
	}
	r.probeMedia(ctx)
	r.probeNotFound(ctx)
	r.probePreflight(ctx)
	r.probeGzipMultivariant(ctx)
}

// probeRenditions fetches every media playlist not followed, once.
func (r *run) probeRenditions(ctx context.Context) {
	for _, u := range r.media[1:] {
		o := other{url: u, res: r.c.do(ctx, request{url: u, kind: kindPlaylist})}
		if o.res.ok() {
			o.pl, o.perr = parseMedia(o.res.body)
		}
		r.others = append(r.others, o)
	}
}

// probePartAlone sends _HLS_part without _HLS_msn: 400 at once.
func (r *run) probePartAlone(ctx context.Context) {
	r.partAlone = r.c.do(ctx, request{url: withQuery(r.primary(), "_HLS_part=0"), kind: kindProbe, timeout: r.holdTimeout()})
}

// probeTooFar asks for a segment 3 past the newest one: 400 at once. It is
// sent right after an update so that no segment starts in between.
func (r *run) probeTooFar(ctx context.Context) {
	pl := r.live.next(ctx)
	if pl == nil {
		return
	}
	p := &directiveProbe{q: position{msn: pl.nextMSN() + 3}, from: pl}
	p.res = r.c.do(ctx, request{url: withQuery(r.primary(), blockingQuery(p.q, false, false)), kind: kindProbe, timeout: r.holdTimeout()})
	r.tooFar = p
}

// probeMSNOnly asks with _HLS_msn alone for the segment after the one in
// progress: it must block until that segment's part 0 exists (Safari).
func (r *run) probeMSNOnly(ctx context.Context) {
	pl := r.live.next(ctx)
	if pl == nil || pl.ended {
		return
	}
	msn := pl.nextMSN()
	if len(pl.tail) > 0 {
		msn++
	}
	p := &directiveProbe{q: position{msn: msn}, from: pl}
	p.res = r.c.do(ctx, request{url: withQuery(r.primary(), blockingQuery(p.q, false, false)), kind: kindBlocking, timeout: r.holdTimeout()})
	if p.res.ok() {
		p.pl, _ = parseMedia(p.res.body)
	}
	r.msnOnly = p
}

// probeUnmeetable asks for a part that the stream cannot produce within 3
// target durations yet lies within the limits that earn a 400: part
// advancePartLimit-1 of the segment two after the newest. It is sent when
// the segment in progress has just begun, so that the hold is as long as
// possible; the server must end it with 503.
func (r *run) probeUnmeetable(ctx context.Context) {
	var pl *mediaPlaylist
	until := time.Now().Add(2 * r.td)
	for {
		p := r.live.next(ctx)
		if p == nil {
			if pl == nil {
				return
			}
			break
		}
		pl = p
		if len(pl.tail) == 1 || time.Now().After(until) {
			break
		}
	}
	if pl.ended {
		return
	}
	last := pl.nextMSN()
	if len(pl.tail) == 0 && last > 0 {
		last--
	}
	p := &directiveProbe{q: position{msn: last + 2, part: advancePartLimit(r.pt) - 1}, withPart: true, from: pl}
	p.res = r.c.do(ctx, request{url: withQuery(r.primary(), blockingQuery(p.q, true, false)), kind: kindProbe, timeout: r.holdTimeout()})
	if p.res.ok() {
		p.pl, _ = parseMedia(p.res.body)
	}
	r.unmeetable = p
}

// probeHinted requests the preload-hinted part right after it is announced:
// the server must hold the request until the part is complete (§3).
func (r *run) probeHinted(ctx context.Context) {
	pl := r.live.next(ctx)
	p := &hintedProbe{}
	r.hinted = p
	switch {
	case pl == nil:
		p.note = "no playlist update to take a hint from"
		return
	case pl.hint == nil:
		p.note = "no EXT-X-PRELOAD-HINT"
		return
	case pl.hint.typ != "PART":
		p.note = "hint of TYPE=" + pl.hint.typ
		return
	case pl.hint.byteRangeStart:
		p.note = "hint is a byte range"
		return
	}
	u, err := resolve(r.primary(), pl.hint.uri)
	if err != nil {
		p.note = err.Error()
		return
	}
	p.uri = pl.hint.uri
	p.res = r.c.do(ctx, request{url: u, kind: kindMedia, timeout: r.holdTimeout()})
}

// probeMedia fetches the init section, a part and a segment, then tries
// HEAD and Range on the part.
func (r *run) probeMedia(ctx context.Context) {
	pl := r.live.current()
	m := &r.media0
	var partURI, segURI string
	pl.allParts(func(_ position, pt part, _ bool) { partURI = pt.uri })
	if n := len(pl.segments); n > 0 {
		segURI = pl.segments[n-1].uri
	}
	var objURI string
	for _, ref := range []string{pl.mapURI, partURI, segURI} {
		if ref == "" {
			continue
		}
		u, err := resolve(r.primary(), ref)
		if err != nil {
			continue
		}
		res := r.c.do(ctx, request{url: u, kind: kindMedia})
		m.gets = append(m.gets, res)
		if (ref == partURI || (partURI == "" && ref == segURI)) && m.part == nil {
			m.part, objURI = res, u
		}
	}
	if m.part == nil {
		m.note = "no part or segment listed"
		return
	}
	if !m.part.ok() {
		return
	}
	m.head = r.c.do(ctx, request{method: http.MethodHead, url: objURI, kind: kindProbe})
	m.rangeStart = r.c.do(ctx, request{url: objURI, kind: kindProbe, header: http.Header{"Range": {"bytes=0-99"}}})
	m.openFrom = len(m.part.body) / 2
	m.openEnded = r.c.do(ctx, request{url: objURI, kind: kindProbe,
		header: http.Header{"Range": {fmt.Sprintf("bytes=%d-9007199254740991", m.openFrom)}}})
}

// probeNotFound asks for a media object that never existed.
func (r *run) probeNotFound(ctx context.Context) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	u, err := resolve(r.primary(), "amphi-check-"+hex.EncodeToString(b[:])+".m4s")
	if err != nil {
		return
	}
	r.notFound = r.c.do(ctx, request{url: u, kind: kindProbe})
}

// probePreflight sends the CORS preflight a browser sends before a Range
// request.
func (r *run) probePreflight(ctx context.Context) {
	r.preflight = r.c.do(ctx, request{method: http.MethodOptions, url: r.primary(), kind: kindProbe, header: http.Header{
		"Access-Control-Request-Method":  {"GET"},
		"Access-Control-Request-Headers": {"range"},
	}})
}

var acceptGzip = http.Header{"Accept-Encoding": {"gzip"}}

// probeGzipMultivariant fetches the multivariant playlist with and without
// gzip.
func (r *run) probeGzipMultivariant(ctx context.Context) {
	if r.mv == nil {
		return
	}
	p := &pairProbe{tries: 1}
	p.a = r.c.do(ctx, request{url: r.cfg.URL, kind: kindProbe})
	p.b = r.c.do(ctx, request{url: r.cfg.URL, kind: kindProbe, header: acceptGzip})
	r.gzipMV = p
}

// probeGzipMedia fetches one version of the media playlist with and
// without gzip.
func (r *run) probeGzipMedia(ctx context.Context) {
	r.gzipMedia = r.samePair(ctx, false, acceptGzip)
}

// probeDelta fetches one version of the media playlist in full and as a
// delta update.
func (r *run) probeDelta(ctx context.Context) {
	pl := r.live.current()
	if pl == nil || pl.sc["CAN-SKIP-UNTIL"] == "" {
		return
	}
	r.delta = r.samePair(ctx, true, nil)
}

// samePair fetches the followed playlist twice at once, the second time
// with the skip directive or extra headers, until both answers show the
// same version (at most 3 tries). For a blocking stream both requests ask
// for the next part, so that one update releases both.
func (r *run) samePair(ctx context.Context, skip bool, hdr http.Header) *pairProbe {
	p := &pairProbe{}
	pl := r.live.current()
	for p.tries < 3 && ctx.Err() == nil {
		p.tries++
		var qa, qb string
		if r.llStream && !pl.ended {
			qa = blockingQuery(pl.next(), true, false)
			qb = blockingQuery(pl.next(), true, skip)
		} else if skip {
			qb = "_HLS_skip=YES"
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			p.a = r.c.do(ctx, request{url: withQuery(r.primary(), qa), kind: kindProbe, timeout: r.holdTimeout()})
		})
		wg.Go(func() {
			p.b = r.c.do(ctx, request{url: withQuery(r.primary(), qb), kind: kindProbe, timeout: r.holdTimeout(), header: hdr})
		})
		wg.Wait()
		if !p.a.ok() || !p.b.ok() {
			return p
		}
		if hdr != nil && bytes.Equal(p.a.body, p.b.body) {
			return p
		}
		pa, errA := parseMedia(p.a.body)
		pb, errB := parseMedia(p.b.body)
		if errA != nil || errB != nil || sameVersion(pa, pb) {
			return p
		}
		pl = pa
		if pb.nextMSN() > pa.nextMSN() || (pb.nextMSN() == pa.nextMSN() && len(pb.tail) > len(pa.tail)) {
			pl = pb
		}
	}
	return p
}

// sameVersion reports whether two renderings list the same newest part.
func sameVersion(a, b *mediaPlaylist) bool {
	return a.next() == b.next() && a.ended == b.ended
}
