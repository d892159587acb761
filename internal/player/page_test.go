package player

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const testHLSJSURL = "https://cdn.jsdelivr.net/npm/hls.js@1/dist/hls.min.js"

func serve(t *testing.T, p *Page, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// directives parses a Content-Security-Policy header into its directives.
func directives(t *testing.T, csp string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		_, dup := out[f[0]]
		require.False(t, dup, "directive %s repeated in %q", f[0], csp)
		out[f[0]] = f[1:]
	}
	return out
}

var nonceAttr = regexp.MustCompile(`<script nonce="([^"]+)">`)

func TestPageServesPlayer(t *testing.T) {
	p := &Page{HLSJSURL: testHLSJSURL}
	rec := serve(t, p, http.MethodGet, "/live/a-b/")

	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Equal(t, "no-cache", rec.Header().Get("Cache-Control"))
	require.Equal(t, strconv.Itoa(rec.Body.Len()), rec.Header().Get("Content-Length"))

	body := rec.Body.String()
	require.Contains(t, body, "<title>amphi — a-b</title>")
	require.Contains(t, body, "<h1>a-b</h1>")
	require.Contains(t, body, `data-hlsjs-url="`+testHLSJSURL+`"`)
	require.Contains(t, body, `"index.m3u8"`)
	require.Contains(t, body, `<meta name="viewport"`)
	require.Contains(t, body, "<audio ")
	require.Contains(t, body, `id="play"`)
	require.Contains(t, body, "window.amphiPlayer")
	require.Contains(t, body, "latency behind live")

	// The inline script runs under the nonce the policy names.
	m := nonceAttr.FindStringSubmatch(body)
	require.NotNil(t, m, "no nonced inline script")
	csp := directives(t, rec.Header().Get("Content-Security-Policy"))
	require.Contains(t, csp["script-src"], "'nonce-"+m[1]+"'")
	require.Contains(t, csp["style-src"], "'nonce-"+m[1]+"'")
}

func TestPageNonceIsFresh(t *testing.T) {
	p := &Page{HLSJSURL: testHLSJSURL}
	a := nonceAttr.FindStringSubmatch(serve(t, p, http.MethodGet, "/live/a/").Body.String())
	b := nonceAttr.FindStringSubmatch(serve(t, p, http.MethodGet, "/live/a/").Body.String())
	require.NotNil(t, a)
	require.NotNil(t, b)
	require.NotEqual(t, a[1], b[1])
}

func TestPageEscapesName(t *testing.T) {
	p := &Page{HLSJSURL: testHLSJSURL}
	for _, tc := range []struct {
		target, raw, escaped string
	}{
		{"/live/%3Cx%3E/", "<x>", "&lt;x&gt;"},
		{"/live/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/", "<img src=x", "&lt;img src=x onerror=alert(1)&gt;"},
		{"/live/a%22%26b/", `a"&b`, "a&#34;&amp;b"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			rec := serve(t, p, http.MethodGet, tc.target)
			if rec.Code == http.StatusNotFound {
				return
			}
			require.Equal(t, http.StatusOK, rec.Code)
			body := rec.Body.String()
			require.NotContains(t, body, tc.raw)
			require.Contains(t, body, "<title>amphi — "+tc.escaped)
		})
	}
}

func TestPageEscapesHLSJSURL(t *testing.T) {
	rec := serve(t, &Page{HLSJSURL: `javascript:alert(1)`}, http.MethodGet, "/live/a/")
	require.Equal(t, http.StatusOK, rec.Code)
	require.NotContains(t, rec.Body.String(), "javascript:alert")

	rec = serve(t, &Page{HLSJSURL: `https://x.example/"><script>alert(1)</script>`}, http.MethodGet, "/live/a/")
	require.Equal(t, http.StatusOK, rec.Code)
	require.NotContains(t, rec.Body.String(), `"><script>alert`)
}

func TestPageNotFound(t *testing.T) {
	p := &Page{HLSJSURL: testHLSJSURL}
	for _, target := range []string{
		"/live/",
		"/live//",
		"/live/a/b/",
		"/live/a",
		"/live/a/index.m3u8",
		"/live/../",
		"/other/a/",
		"/",
	} {
		t.Run(target, func(t *testing.T) {
			rec := serve(t, p, http.MethodGet, target)
			require.Equal(t, http.StatusNotFound, rec.Code)
		})
	}
}

func TestPageCSP(t *testing.T) {
	for _, tc := range []struct {
		url   string
		extra []string // script sources besides 'self' and the nonce
	}{
		{testHLSJSURL, []string{"https://cdn.jsdelivr.net"}},
		{"http://LocalHost:9000/js/hls.js?v=1", []string{"http://localhost:9000"}},
		{"//cdn.example.com/hls.js", []string{"cdn.example.com"}},
		{"/static/hls.min.js", nil},
		{"hls.min.js", nil},
		{"", nil},
		{"https://evil.example;script-src *", nil},
		{"data:text/javascript,alert(1)", nil},
	} {
		t.Run(tc.url, func(t *testing.T) {
			rec := serve(t, &Page{HLSJSURL: tc.url}, http.MethodGet, "/live/a/")
			require.Equal(t, http.StatusOK, rec.Code)
			header := rec.Header().Get("Content-Security-Policy")
			require.NotEmpty(t, header)
			csp := directives(t, header)

			m := nonceAttr.FindStringSubmatch(rec.Body.String())
			require.NotNil(t, m)
			want := append([]string{"'self'", "'nonce-" + m[1] + "'"}, tc.extra...)
			require.Equal(t, want, csp["script-src"])

			require.Equal(t, []string{"'none'"}, csp["default-src"])
			require.Equal(t, []string{"'self'", "blob:"}, csp["media-src"])
			require.Equal(t, []string{"'self'"}, csp["connect-src"])
			require.Contains(t, csp["worker-src"], "blob:")
		})
	}
}

func TestPageHead(t *testing.T) {
	p := &Page{HLSJSURL: testHLSJSURL}
	get := serve(t, p, http.MethodGet, "/live/a/")
	rec := serve(t, p, http.MethodHead, "/live/a/")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Zero(t, rec.Body.Len())
	require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Equal(t, "no-cache", rec.Header().Get("Cache-Control"))
	require.NotEmpty(t, rec.Header().Get("Content-Security-Policy"))
	require.Equal(t, get.Header().Get("Content-Length"), rec.Header().Get("Content-Length"))

	// Through a real server as well.
	srv := httptest.NewServer(p)
	defer srv.Close()
	resp, err := http.Head(srv.URL + "/live/a/")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, int64(get.Body.Len()), resp.ContentLength)
}

func TestPageMethodNotAllowed(t *testing.T) {
	rec := serve(t, &Page{HLSJSURL: testHLSJSURL}, http.MethodPost, "/live/a/")
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	require.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
}

// TestPageScriptSyntax checks the inline script with node --check when node
// is installed.
func TestPageScriptSyntax(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	body := serve(t, &Page{HLSJSURL: testHLSJSURL}, http.MethodGet, "/live/a/").Body.String()
	_, rest, ok := strings.Cut(body, "<script nonce=")
	require.True(t, ok)
	_, rest, ok = strings.Cut(rest, ">")
	require.True(t, ok)
	script, _, ok := strings.Cut(rest, "</script>")
	require.True(t, ok)

	file := filepath.Join(t.TempDir(), "page.js")
	require.NoError(t, os.WriteFile(file, []byte(script), 0o600))
	out, err := exec.Command(node, "--check", file).CombinedOutput()
	require.NoError(t, err, "node --check: %s", out)
}
