// Package player serves the small listening page at /live/NAME/.
//
// The page plays the stream's multivariant playlist (the relative URL
// index.m3u8) with the browser's native HLS support where there is one
// (Safari) and with hls.js, loaded on demand from a configurable URL,
// everywhere else. It exposes its state to automated browser tests as
// window.amphiPlayer = {state, latency, hls, ...} and as
// document.body.dataset.state.
package player

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

//go:embed page.html.tmpl
var pageSource string

var pageTemplate = template.Must(template.New("page.html.tmpl").Parse(pageSource))

// Page serves the player page for /live/NAME/.
type Page struct {
	// HLSJSURL is where hls.js is loaded from in browsers without native HLS.
	HLSJSURL string
}

// pageData is what page.html.tmpl renders.
type pageData struct {
	Name     string
	HLSJSURL string
	Nonce    string
}

// ServeHTTP implements http.Handler. It answers GET and HEAD for
// /live/NAME/ and 404 for any other path.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := pageName(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}

	nonce := rand.Text()
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, pageData{Name: name, HLSJSURL: p.HLSJSURL, Nonce: nonce}); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}

	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", p.contentSecurityPolicy(nonce))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// pageName returns NAME from /live/NAME/. NAME must be one non-empty path
// segment; broadcast names are validated by the router, so this only
// rejects what cannot be a segment at all.
func pageName(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/live/")
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, "/")
	if !ok || name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return "", false
	}
	if !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", false
	}
	return name, true
}

// contentSecurityPolicy allows the page's own inline script and style (by
// nonce), scripts from 'self' and from the origin of HLSJSURL, media from
// 'self' and MediaSource blobs, and requests to 'self' only.
func (p *Page) contentSecurityPolicy(nonce string) string {
	n := "'nonce-" + nonce + "'"
	scripts := "'self' " + n
	if o := scriptSource(p.HLSJSURL); o != "" && o != "'self'" {
		scripts += " " + o
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src " + scripts,
		"style-src " + n,
		"media-src 'self' blob:",
		"connect-src 'self'",
		// hls.js runs its transmuxer in a Worker made from a blob: URL.
		"worker-src 'self' blob:",
		"img-src 'self' data:",
		"base-uri 'none'",
		"form-action 'none'",
	}, "; ")
}

// scriptSource returns the CSP source expression that allows loading
// hls.js from raw: "'self'" for a relative path, "scheme://host[:port]"
// for an absolute http(s) URL, the bare host for a scheme-relative URL,
// and "" when raw is empty or nothing safe can be derived from it.
func scriptSource(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return ""
	}
	host := strings.ToLower(u.Host)
	switch {
	case u.Scheme == "" && host == "":
		return "'self'"
	case !validHostSource(host):
		return ""
	case u.Scheme == "":
		return host
	case u.Scheme == "http" || u.Scheme == "https":
		return u.Scheme + "://" + host
	default:
		return ""
	}
}

// validHostSource reports whether host (with an optional port) can stand in
// a CSP source list as is: no separators, quotes or whitespace that would
// change the policy.
func validHostSource(host string) bool {
	if host == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}
