package check

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Rules on the HTTP profile (LLHLS.md §3–4). They judge the answers to the
// ordinary player requests the run made (kindProbe answers are excluded)
// plus the dedicated probes.

// cacheControl is a parsed Cache-Control header.
type cacheControl struct {
	raw                               string
	maxAge                            int
	hasMaxAge                         bool
	immutable, noCache, noStore, priv bool
}

func parseCacheControl(h http.Header) cacheControl {
	cc := cacheControl{raw: strings.Join(h.Values("Cache-Control"), ", ")}
	sMaxAge, hasS := 0, false
	for _, d := range strings.Split(cc.raw, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(d), "=")
		v = strings.Trim(v, `"`)
		switch strings.ToLower(k) {
		case "max-age":
			if n, err := strconv.Atoi(v); err == nil {
				cc.maxAge, cc.hasMaxAge = n, true
			}
		case "s-maxage":
			if n, err := strconv.Atoi(v); err == nil {
				sMaxAge, hasS = n, true
			}
		case "immutable":
			cc.immutable = true
		case "no-cache":
			cc.noCache = true
		case "no-store":
			cc.noStore = true
		case "private":
			cc.priv = true
		}
	}
	if hasS {
		// Shared caches obey s-maxage over max-age.
		cc.maxAge, cc.hasMaxAge = sMaxAge, true
	}
	return cc
}

// uncacheable names a directive that stops shared caches from storing or
// collapsing (Varnish turns it into hit-for-miss, LLHLS.md §5).
func (cc cacheControl) uncacheable() string {
	switch {
	case cc.noStore:
		return "no-store"
	case cc.noCache:
		return "no-cache"
	case cc.priv:
		return "private"
	}
	return ""
}

func (r *run) ruleCacheControl() Result {
	var v verdict
	td := r.td.Seconds()
	type class struct {
		label, want string
		good, bad   int
		example     string // of a good answer
		badURL      string // of the first bad answer
		badCC       string
	}
	blocking := &class{label: "blocking playlist", want: fmt.Sprintf("max-age≈%s (6 × TD)", num(6*td))}
	plain := &class{label: "playlist", want: fmt.Sprintf("max-age≈%s (TD/2, at least 1)", num(td/2))}
	media := &class{label: "media", want: "max-age ≥ 3600 or immutable"}
	for _, res := range r.c.responses() {
		if res.err != nil || (res.status != http.StatusOK && res.status != http.StatusPartialContent) {
			continue
		}
		cc := parseCacheControl(res.header)
		maxAge := float64(cc.maxAge)
		var c *class
		var ok bool
		switch res.kind {
		case kindBlocking:
			c = blocking
			ok = cc.hasMaxAge && cc.uncacheable() == "" && maxAge >= 6*td-1 && maxAge <= 6*td+1
		case kindPlaylist:
			c = plain
			ok = cc.hasMaxAge && cc.uncacheable() == "" && maxAge >= 1 && maxAge >= td/2-1 && maxAge <= td/2+1
		case kindMedia:
			c = media
			ok = cc.uncacheable() == "" && (cc.immutable || (cc.hasMaxAge && cc.maxAge >= 3600))
		default:
			continue
		}
		switch {
		case ok:
			c.good++
			c.example = cc.raw
		case c.bad == 0:
			c.bad, c.badURL, c.badCC = 1, res.url, cc.raw
		default:
			c.bad++
		}
	}
	for _, c := range []*class{blocking, plain, media} {
		if c.bad > 0 {
			v.fail("%s: Cache-Control %q on %d of %d answers (e.g. %s), want %s",
				c.label, c.badCC, c.bad, c.bad+c.good, name(c.badURL), c.want)
		} else if c.good > 0 {
			v.note("%s %q ×%d", c.label, c.example, c.good)
		}
	}
	if res := r.notFound; res != nil {
		cc := res.header.Get("Cache-Control")
		switch {
		case res.err != nil:
			v.fail("unknown media object: %s", res.err)
		case res.status < 400 || res.status >= 500:
			v.fail("unknown media object %s answered %d, want 404", name(res.url), res.status)
		case cc == "":
			v.fail("%d for an unknown media object has no Cache-Control (a miss storm reaches the origin)", res.status)
		default:
			v.note("%d %q", res.status, cc)
		}
	}
	if len(v.notes) == 0 && len(v.fails) == 0 {
		return skip("", "no playlist or media answer to judge")
	}
	return v.result()
}

// cacheSigns are headers by which a cache on the path shows itself.
var cacheSigns = []string{"Age", "Via", "X-Cache", "X-Cache-Status", "Cf-Cache-Status", "X-Proxy-Cache"}

func (r *run) ruleAge() Result {
	all := r.c.responses()
	sign := ""
	for _, res := range all {
		for _, h := range cacheSigns {
			if res.header.Get(h) != "" && sign == "" {
				sign = h
			}
		}
	}
	if sign == "" {
		if r.cfg.ExpectCache {
			return fail("", "no Age (nor Via or X-Cache) on any of %d answers: a cache must set Age (hls.js #6076)", len(all))
		}
		return skip("", "no cache detected (no Age, Via or X-Cache on %d answers)", len(all))
	}
	var v verdict
	judged, missing := 0, 0
	maxPlaylistAge := -1
	for _, res := range all {
		if res.err != nil || (res.status != http.StatusOK && res.status != http.StatusPartialContent) || res.kind == kindProbe {
			continue
		}
		judged++
		a, err := strconv.Atoi(res.header.Get("Age"))
		if err != nil || a < 0 {
			if missing++; missing == 1 {
				v.fail("no valid Age on %s %s (Age %q)", kindName(res.kind), name(res.url), res.header.Get("Age"))
			}
			continue
		}
		if res.kind != kindMedia {
			maxPlaylistAge = max(maxPlaylistAge, a)
		}
	}
	if missing > 1 {
		v.fail("%d of %d answers without Age", missing, judged)
	}
	ev := fmt.Sprintf("cache detected (%s); Age on all %d playlist and media answers", sign, judged)
	if maxPlaylistAge >= 0 {
		ev += fmt.Sprintf(", at most %d on playlists", maxPlaylistAge)
	}
	v.note("%s", ev)
	return v.result()
}

func kindName(k kind) string {
	switch k {
	case kindMultivariant:
		return "multivariant playlist"
	case kindPlaylist:
		return "playlist"
	case kindBlocking:
		return "blocking playlist"
	case kindMedia:
		return "media"
	}
	return "probe"
}

func (r *run) ruleGzip() Result {
	var v verdict
	judge := func(label string, p *pairProbe) {
		switch {
		case p == nil:
			return
		case !p.a.ok():
			v.fail("%s: %s", label, p.a.describe())
		case !p.b.ok():
			v.fail("%s with Accept-Encoding: gzip: %s", label, p.b.describe())
		case p.a.gzipped:
			v.fail("%s gzip-compressed without Accept-Encoding: gzip", label)
		case !p.b.gzipped:
			v.fail("%s not gzip-compressed with Accept-Encoding: gzip (Content-Encoding %q)", label, p.b.header.Get("Content-Encoding"))
		case !varies(p.b.header, "Accept-Encoding"):
			v.fail("%s gzip answer without Vary: Accept-Encoding (a cache may hand it to a client without gzip)", label)
		case !bytes.Equal(p.a.body, p.b.body):
			pa, errA := parseMedia(p.a.body)
			pb, errB := parseMedia(p.b.body)
			if errA == nil && errB == nil && !sameVersion(pa, pb) {
				v.note("%s gzip %d → %d bytes (the playlist moved on between answers; not compared)", label, len(p.b.body), p.b.wireLen)
				return
			}
			v.fail("%s differs after decompression", label)
		default:
			v.note("%s %d → %d bytes", label, len(p.b.body), p.b.wireLen)
		}
	}
	judge("media playlist", r.gzipMedia)
	judge("multivariant", r.gzipMV)
	if len(v.notes) == 0 && len(v.fails) == 0 {
		return skip("", "no playlist fetched twice")
	}
	if len(v.fails) == 0 {
		v.notes[0] = "gzip: " + v.notes[0]
		v.note("identical after decompression, Vary: Accept-Encoding")
	}
	return v.result()
}

// varies reports whether the Vary header names h.
func varies(hd http.Header, h string) bool {
	for _, line := range hd.Values("Vary") {
		for _, f := range strings.Split(line, ",") {
			f = strings.TrimSpace(f)
			if f == "*" || strings.EqualFold(f, h) {
				return true
			}
		}
	}
	return false
}

func (r *run) ruleCORS() Result {
	var v verdict
	playlists, media, missing := 0, 0, 0
	var firstMissing *response
	ageSent, ageExposed := false, true
	for _, res := range r.c.responses() {
		if res.err != nil || res.status/100 != 2 || res.kind == kindProbe {
			continue
		}
		acao := res.header.Get("Access-Control-Allow-Origin")
		if acao != "*" && acao != checkOrigin {
			if missing++; missing == 1 {
				firstMissing = res
			}
			continue
		}
		if res.kind == kindMedia {
			media++
		} else {
			playlists++
		}
		if res.header.Get("Age") != "" {
			ageSent = true
			if !exposes(res.header, "Age") {
				ageExposed = false
			}
		}
	}
	if missing > 0 {
		v.fail("no Access-Control-Allow-Origin for Origin %s on %d of %d answers (e.g. %s %s: %q)", checkOrigin,
			missing, missing+playlists+media, kindName(firstMissing.kind), name(firstMissing.url),
			firstMissing.header.Get("Access-Control-Allow-Origin"))
	}
	if ageSent && !ageExposed {
		v.fail("Age is sent but not in Access-Control-Expose-Headers: hls.js cannot read it cross-origin")
	}
	if missing == 0 {
		v.note("Access-Control-Allow-Origin on %s and %s", plural(playlists, "playlist answer", "playlist answers"), plural(media, "media answer", "media answers"))
	}
	if res := r.preflight; res != nil {
		allow := res.header.Get("Access-Control-Allow-Methods")
		switch {
		case res.err != nil || res.status/100 != 2:
			v.fail("OPTIONS preflight: %s", res.describe())
		case res.header.Get("Access-Control-Allow-Origin") == "":
			v.fail("OPTIONS preflight %d without Access-Control-Allow-Origin", res.status)
		case allow != "" && allow != "*" && !strings.Contains(strings.ToUpper(allow), "GET"):
			v.fail("OPTIONS preflight allows %q, not GET", allow)
		default:
			v.note("OPTIONS preflight %d", res.status)
		}
	}
	if ageSent && ageExposed {
		v.note("Age exposed")
	}
	return v.result()
}

// exposes reports whether Access-Control-Expose-Headers lets a script read h.
func exposes(hd http.Header, h string) bool {
	for _, line := range hd.Values("Access-Control-Expose-Headers") {
		for _, f := range strings.Split(line, ",") {
			f = strings.TrimSpace(f)
			if f == "*" || strings.EqualFold(f, h) {
				return true
			}
		}
	}
	return false
}

func (r *run) ruleHeadRange() Result {
	m := &r.media0
	switch {
	case m.note != "":
		return skip("", "%s", m.note)
	case m.part == nil:
		return skip("", "no media object fetched")
	case !m.part.ok():
		return fail("", "GET %s: %s", name(m.part.url), m.part.describe())
	}
	obj := m.part.body
	size := len(obj)
	var v verdict
	v.note("%s (%d bytes)", name(m.part.url), size)
	if h := m.head; h != nil {
		cl := h.header.Get("Content-Length")
		switch {
		case h.err != nil || h.status != http.StatusOK:
			v.fail("HEAD: %s", h.describe())
		case cl == "":
			v.fail("HEAD 200 without Content-Length")
		case cl != strconv.Itoa(size):
			v.fail("HEAD Content-Length %s, but GET returned %d bytes", cl, size)
		case len(h.body) > 0:
			v.fail("HEAD answered with a body of %d bytes", len(h.body))
		default:
			v.note("HEAD 200 Content-Length %s, no body", cl)
		}
	}
	judgeRange := func(res *response, spec string, from int, to int) {
		if res == nil {
			return
		}
		want := fmt.Sprintf("bytes %d-%d/%d", from, to, size)
		switch {
		case res.err != nil:
			v.fail("Range %s: %s", spec, res.err)
		case res.status == http.StatusOK:
			v.fail("Range %s ignored: 200 with all %d bytes", spec, len(res.body))
		case res.status != http.StatusPartialContent:
			v.fail("Range %s: %d, want 206", spec, res.status)
		case !bytes.Equal(res.body, obj[from:to+1]):
			v.fail("Range %s: 206 with %d bytes that are not bytes %d-%d of the object", spec, len(res.body), from, to)
		case res.header.Get("Content-Range") != want:
			v.fail("Range %s: Content-Range %q, want %q", spec, res.header.Get("Content-Range"), want)
		default:
			v.note("%s → 206 %s", spec, want)
		}
	}
	if size > 0 {
		judgeRange(m.rangeStart, "bytes=0-99", 0, min(99, size-1))
		judgeRange(m.openEnded, fmt.Sprintf("bytes=%d-9007199254740991", m.openFrom), m.openFrom, size-1)
	}
	return v.result()
}
