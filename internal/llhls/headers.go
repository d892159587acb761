package llhls

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pre-built header values, shared so the hot path does not allocate them.
var (
	contentTypePlaylist = []string{"application/vnd.apple.mpegurl"}
	varyAcceptEncoding  = []string{"Accept-Encoding"}
	contentEncodingGzip = []string{"gzip"}
	cacheImmutable      = []string{"public, max-age=31536000, immutable"}
	noStore             = []string{"no-store"}
	acceptRangesBytes   = []string{"bytes"}
)

// cacheFor returns a Cache-Control header value of max-age d, in whole
// seconds and at least one: max-age=0 makes shared caches such as Varnish
// stop collapsing requests (LLHLS.md §5). Common values are built once, so
// the request path does not allocate them; callers must not modify them.
func cacheFor(d time.Duration) []string {
	secs := max(1, int(d/time.Second))
	if secs < len(maxAges) {
		return maxAges[secs]
	}
	return []string{"public, max-age=" + strconv.Itoa(secs)}
}

// maxAges[n] is the header value "public, max-age=n" (6 × a 20 s target
// duration fits).
var maxAges = func() [][]string {
	v := make([][]string, 128)
	for n := range v {
		v[n] = []string{"public, max-age=" + strconv.Itoa(n)}
	}
	return v
}()

func setCORS(h http.Header) {
	h["Access-Control-Allow-Origin"] = corsOrigin
	h["Access-Control-Expose-Headers"] = corsExpose
}

var (
	corsOrigin = []string{"*"}
	corsExpose = []string{"Age, Content-Length, Content-Range, Date"}
)

// httpError writes a short plain-text error. cc nil sends no Cache-Control.
func httpError(w http.ResponseWriter, code int, cc []string, msg string) {
	h := w.Header()
	setCORS(h)
	h.Del("Content-Encoding")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if cc != nil {
		h["Cache-Control"] = cc
	}
	w.WriteHeader(code)
	w.Write([]byte(strconv.Itoa(code) + " " + msg + "\n"))
}

// wantsGzip reports whether the request accepts a gzip-compressed answer.
// Like Header.Get it reads the first Accept-Encoding field, indexing the
// map directly: Get canonicalises the key first.
func wantsGzip(r *http.Request) bool {
	ae := r.Header["Accept-Encoding"]
	return len(ae) > 0 && acceptsGzip(ae[0])
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip: an
// explicit gzip entry decides, else a wildcard does (RFC 9110 §12.5.3).
func acceptsGzip(ae string) bool {
	gzip, star := -1, -1 // -1 absent, 0 refused, 1 accepted
	for ae != "" {
		var tok string
		tok, ae, _ = strings.Cut(ae, ",")
		coding, params, _ := strings.Cut(tok, ";")
		coding = strings.TrimSpace(coding)
		ok := 1
		for params != "" {
			var param string
			param, params, _ = strings.Cut(params, ";")
			k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q == 0 {
					ok = 0
				}
			}
		}
		switch {
		case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
			gzip = ok
		case coding == "*":
			star = ok
		}
	}
	if gzip >= 0 {
		return gzip == 1
	}
	return star == 1
}

// gzipWriters holds idle compressors: each owns about a megabyte of
// tables, which made a fresh one per playlist version the edge's largest
// allocation.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b)/2 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	zw.Write(b)
	zw.Close()
	zw.Reset(nil)
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// prerenderer is the fast path of h1's ResponseWriter: a whole answer
// whose header block the handler rendered once for many clients.
type prerenderer interface {
	WritePrerendered(code int, fields, body []byte) error
}

// asPrerenderer finds the fast path behind w, through wrappers that
// Unwrap (as http.ResponseController does), or returns nil. The wrappers
// see no WriteHeader: the answers sent this way are all 200 OK. A type
// switch, not a generic assertion: this runs for every answer.
func asPrerenderer(w http.ResponseWriter) prerenderer {
	for {
		switch t := w.(type) {
		case prerenderer:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

// fieldSpec describes the header fields of a 200 answer that many clients
// get alike: rendered once as bytes for the fast path (render), or set in
// a header map (set). The values are the handler's own constants.
type fieldSpec struct {
	contentType string
	cc          string
	age         int64 // seconds; -1 sends no Age
	gzip        bool  // Content-Encoding: gzip
	playlist    bool  // Vary: Accept-Encoding
	ranges      bool  // Accept-Ranges: bytes
}

// each calls fn for every field, in order.
func (s fieldSpec) each(fn func(name, value string)) {
	fn("Access-Control-Allow-Origin", corsOrigin[0])
	fn("Access-Control-Expose-Headers", corsExpose[0])
	fn("Content-Type", s.contentType)
	fn("Cache-Control", s.cc)
	if s.playlist {
		fn("Vary", varyAcceptEncoding[0])
	}
	if s.ranges {
		fn("Accept-Ranges", acceptRangesBytes[0])
	}
	if s.gzip {
		fn("Content-Encoding", contentEncodingGzip[0])
	}
	if s.age >= 0 {
		fn("Age", strconv.FormatInt(s.age, 10))
	}
}

func (s fieldSpec) render() []byte {
	b := make([]byte, 0, 256)
	s.each(func(name, value string) {
		b = append(b, name...)
		b = append(b, ": "...)
		b = append(b, value...)
		b = append(b, "\r\n"...)
	})
	return b
}

func (s fieldSpec) set(h http.Header) {
	s.each(func(name, value string) { h[name] = []string{value} })
}

// fieldCache holds the header block of one kind of answer, rendered again
// when its spec changes (Age, once a second).
type fieldCache struct{ p atomic.Pointer[fieldBlock] }

type fieldBlock struct {
	spec fieldSpec
	b    []byte
}

func (fc *fieldCache) get(s fieldSpec) []byte {
	if fb := fc.p.Load(); fb != nil && fb.spec == s {
		return fb.b
	}
	b := s.render()
	fc.p.Store(&fieldBlock{spec: s, b: b})
	return b
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func itoa(n int) string { return strconv.Itoa(n) }
