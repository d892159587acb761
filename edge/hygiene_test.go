package edge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/config"
)

// rawGet sends one request with exactly this request line and headers
// over a fresh connection to addr (host:port) and returns the response.
func rawGet(t *testing.T, addr, requestTarget string, headers ...string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\n", requestTarget)
	hasHost := false
	for _, h := range headers {
		hasHost = hasHost || strings.HasPrefix(strings.ToLower(h), "host:")
		b.WriteString(h + "\r\n")
	}
	if !hasHost {
		b.WriteString("Host: " + addr + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	_, err = io.WriteString(c, b.String())
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err, "request %q", requestTarget)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(strings.NewReader(string(body)))
	return res
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// hostOf is the host:port of a base URL.
func hostOf(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	require.NoError(t, err)
	return u.Host
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

// TestEdgeHygiene checks that the edge is no open proxy and forwards only
// what LL-HLS needs.
func TestEdgeHygiene(t *testing.T) {
	t.Parallel()
	srv := startTestOrigin(t, "low")
	publish(t, srv, "hy")
	pl := directPlaylist(t, srv.Handler(), "hy")
	require.NotNil(t, pl)
	parts := partsOf(pl)
	require.NotEmpty(t, parts)
	oldPart := parts[0].uri

	evil := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "#EXTM3U\n# evil\n")
	}), nil)
	evilHost := hostOf(t, evil.URL)

	t.Run("only configured upstreams", func(t *testing.T) {
		up := startUpstream(t, srv.Handler(), nil)
		e := startEdge(t, testEdgeConfig(up.URL))
		edgeHost := hostOf(t, e.URL)
		tests := []struct {
			name    string
			target  string
			headers []string
		}{
			{"url parameter", "/live/hy/index.m3u8?url=" + url.QueryEscape(evil.URL+"/x"), nil},
			{"upstream parameter", "/live/hy/index.m3u8?upstream=" + evil.URL + "&origin=" + evil.URL, nil},
			{"host header", "/live/hy/index.m3u8", []string{"Host: " + evilHost}},
			{"forwarded headers", "/live/hy/index.m3u8", []string{"X-Forwarded-Host: " + evilHost, "Forwarded: host=" + evilHost}},
			{"absolute-URI request line", "http://" + evilHost + "/live/hy/index.m3u8", []string{"Host: " + evilHost}},
			{"absolute-URI request line, edge host", "http://" + evilHost + "/live/hy/index.m3u8", []string{"Host: " + edgeHost}},
			{"absolute-URI media", "http://" + evilHost + "/live/hy/" + oldPart, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := rawGet(t, edgeHost, tt.target, tt.headers...)
				body := readBody(t, res)
				require.Equal(t, http.StatusOK, res.StatusCode, body)
				require.NotContains(t, body, "evil")
			})
		}
		require.Zero(t, evil.log.count(), "the edge contacted a host it was not configured with")
		for _, r := range up.log.snapshot() {
			require.Equal(t, hostOf(t, up.URL), r.host, "upstream request %s with a foreign Host", r.path)
		}
	})

	t.Run("only delivery directives reach the upstream", func(t *testing.T) {
		up := startUpstream(t, srv.Handler(), nil)
		e := startEdge(t, testEdgeConfig(up.URL))
		media := mediaPlaylistURI(string(directGet(t, srv.Handler(), "/live/hy/index.m3u8")))
		require.NotEmpty(t, media)
		// A segment that exists: the blocking requests are answered at once.
		msn := fmt.Sprint(directPlaylist(t, srv.Handler(), "hy").NextMSN() - 1)
		tests := []struct {
			target string
			status int
		}{
			{"/live/hy/index.m3u8?a=1&token=x", http.StatusOK},
			{"/live/hy/" + media + "?a=1&token=x", http.StatusOK},
			{"/live/hy/" + media + "?a=1&_HLS_msn=" + msn + "&token=x", http.StatusOK},
			{"/live/hy/" + media + "?token=x&_HLS_msn=" + msn + "&_HLS_part=0&_HLS_skip=YES&cb=123", http.StatusOK},
			{"/live/hy/" + oldPart + "?token=x&_HLS_msn=1", http.StatusOK},
			{"/live/hy/" + oldPart + "?sig=abc", http.StatusOK},
			{"/live/unknown-directive-test/index.m3u8?token=x&a=1", http.StatusNotFound},
			{"/live/unknown-directive-test/" + media + "?token=x&_HLS_msn=1", http.StatusNotFound},
		}
		client := newClient(1)
		for _, tt := range tests {
			res, err := client.Get(e.URL + tt.target)
			require.NoError(t, err)
			body := readBody(t, res)
			res.Body.Close()
			require.Equal(t, tt.status, res.StatusCode, "%s: %s", tt.target, body)
		}
		seen := up.log.snapshot()
		require.NotEmpty(t, seen)
		for _, r := range seen {
			q, err := url.ParseQuery(r.query)
			require.NoError(t, err)
			for k := range q {
				require.Contains(t, []string{"_HLS_msn", "_HLS_part", "_HLS_skip"}, k, "upstream got query %q for %s", r.query, r.path)
			}
			if !strings.HasSuffix(r.path, ".m3u8") || strings.HasSuffix(r.path, "/index.m3u8") {
				require.Empty(t, r.query, "a media or multivariant request upstream carries a query: %s?%s", r.path, r.query)
			}
		}
	})

	t.Run("path traversal", func(t *testing.T) {
		up := startUpstream(t, srv.Handler(), nil)
		e := startEdge(t, testEdgeConfig(up.URL))
		edgeHost := hostOf(t, e.URL)
		targets := []string{
			"/live/../etc/passwd",
			"/live/hy/../../etc/passwd",
			"/live/hy/..%2f..%2fx",
			"/live/hy/..%2F..%2Fetc%2Fpasswd",
			"/live/hy%2f..%2f..%2fetc/passwd",
			"/live/hy/%2e%2e/%2e%2e/etc/passwd",
			"/live/hy/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
			"/live/..%2f..%2fetc%2fpasswd/index.m3u8",
			"/live/hy%2Fevil/index.m3u8",
			"/live/hy/a%2fb.m4s",
			"/live/hy/sub/index.m3u8",
			"/live/hy/..",
			"/live/hy/.hidden.m4s",
			"/live/hy/..%5c..%5cetc%5cpasswd",
			"/live/hy/x%00.m4s",
			"/live/HY/index.m3u8",
			"/live/hy%00/index.m3u8",
			"/live/" + strings.Repeat("a", 65) + "/index.m3u8",
		}
		for _, target := range targets {
			t.Run(target, func(t *testing.T) {
				res := rawGet(t, edgeHost, target)
				// net/http's ServeMux answers a path with dot segments with
				// a redirect to the clean one; following it must end in a
				// 404 too.
				for hops := 0; hops < 3 && isRedirect(res.StatusCode); hops++ {
					loc := res.Header.Get("Location")
					require.NotEmpty(t, loc)
					u, err := url.Parse(loc)
					require.NoError(t, err)
					res = rawGet(t, edgeHost, u.RequestURI())
				}
				require.Equal(t, http.StatusNotFound, res.StatusCode)
			})
		}
		require.Zero(t, up.log.count(), "a malformed path reached the upstream: %v", up.log.snapshot())

		// A doubled slash is only canonicalised.
		res := rawGet(t, edgeHost, "/live//hy/index.m3u8")
		require.True(t, isRedirect(res.StatusCode), "status %d", res.StatusCode)
		require.Equal(t, "/live/hy/index.m3u8", res.Header.Get("Location"))
		require.Zero(t, up.log.count())
	})

	t.Run("unknown broadcasts are negatively cached", func(t *testing.T) {
		up := startUpstream(t, srv.Handler(), nil)
		cfg := testEdgeConfig(up.URL)
		// Long enough that the whole subtest runs inside one TTL.
		cfg.NegativeTTL = config.Duration(30 * time.Second)
		e := startEdge(t, cfg)
		client := newClient(50)
		defer client.CloseIdleConnections()
		getAll := func(targets []string) {
			var wg sync.WaitGroup
			codes := make([]int, len(targets))
			for i, target := range targets {
				wg.Go(func() {
					res, err := client.Get(e.URL + target)
					if err != nil {
						codes[i] = -1
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					codes[i] = res.StatusCode
				})
			}
			wg.Wait()
			for i, c := range codes {
				require.Equal(t, http.StatusNotFound, c, targets[i])
			}
		}
		name := fmt.Sprintf("nx-%d", time.Now().UnixNano())
		same := make([]string, 50)
		for i := range same {
			// Every kind of file: all answered from the one negative entry.
			same[i] = "/live/" + name + "/" + []string{"index.m3u8", "audio.m3u8", "audio.m3u8?_HLS_msn=3&_HLS_part=1", "part1.m4s", ""}[i%5]
		}
		getAll(same)
		getAll(same) // and again, one by one
		n := up.log.countWhere(func(r upstreamRequest) bool { return strings.Contains(r.path, name) })
		require.LessOrEqual(t, n, 1, "upstream asked %d times about one unknown broadcast", n)

		distinct := make([]string, 50)
		for i := range distinct {
			distinct[i] = fmt.Sprintf("/live/%s-%d/index.m3u8", name, i)
		}
		before := up.log.count()
		getAll(distinct)
		getAll(distinct)
		require.LessOrEqual(t, up.log.count()-before, 50, "upstream requests for 50 unknown names asked twice")
		t.Logf("upstream requests: %d for 200 requests about one unknown name, %d for 100 about 50 names", n, up.log.count()-before)
	})

	t.Run("header size limit", func(t *testing.T) {
		up := startUpstream(t, srv.Handler(), nil)
		e := startEdge(t, testEdgeConfig(up.URL))
		res := rawGet(t, hostOf(t, e.URL), "/live/hy/index.m3u8", "X-Big: "+strings.Repeat("x", 20<<10))
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode)
		require.Zero(t, up.log.count())
	})
}

// directGet GETs target from handler h in process.
func directGet(t *testing.T, h http.Handler, target string) []byte {
	t.Helper()
	rec := newRecorder()
	h.ServeHTTP(rec, mustRequest(t, target))
	require.Equal(t, http.StatusOK, rec.code, target)
	return []byte(rec.body.String())
}

// TestEdgeGracefulShutdown cancels Serve's context while a playlist
// request is held: the request is answered 503 at once, Serve returns, and
// a new edge on a new listener serves within a second.
func TestEdgeGracefulShutdown(t *testing.T) {
	t.Parallel()
	srv := startTestOrigin(t, "low")
	publish(t, srv, "gs")
	up := startUpstream(t, srv.Handler(), nil)
	e := startEdge(t, testEdgeConfig(up.URL))
	client := newClient(2)
	defer client.CloseIdleConnections()

	media := mediaPlaylistURI(string(directGet(t, srv.Handler(), "/live/gs/index.m3u8")))
	res, err := client.Get(e.URL + "/live/gs/" + media)
	require.NoError(t, err)
	body := readBody(t, res)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	pl := directPlaylist(t, srv.Handler(), "gs")
	// Two segments ahead: the hold lasts well over a second.
	msn := pl.NextMSN() + 1
	if len(pl.Parts) > 0 {
		msn++
	}

	type answer struct {
		status int
		at     time.Time
		err    error
	}
	held := make(chan answer, 1)
	go func() {
		res, err := client.Get(fmt.Sprintf("%s/live/gs/%s?_HLS_msn=%d&_HLS_part=0", e.URL, media, msn))
		if err != nil {
			held <- answer{err: err, at: time.Now()}
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		held <- answer{status: res.StatusCode, at: time.Now()}
	}()
	deadline := time.Now().Add(3 * time.Second)
	for metricValue(metricsText(t, e.Edge), "amphi_edge_held_requests") < 1 {
		require.True(t, time.Now().Before(deadline), "the request was never held")
		time.Sleep(10 * time.Millisecond)
	}

	stopAt := time.Now()
	e.cancel()
	select {
	case a := <-held:
		require.NoError(t, a.err)
		require.Equal(t, http.StatusServiceUnavailable, a.status)
		require.Less(t, a.at.Sub(stopAt), time.Second, "held request released late")
		t.Logf("held request answered %d %v after shutdown began", a.status, a.at.Sub(stopAt).Round(time.Millisecond))
	case <-time.After(3 * time.Second):
		t.Fatal("held request not answered within 3s of shutdown")
	}
	select {
	case <-e.done:
		require.NoError(t, e.err)
	case <-time.After(6 * time.Second):
		t.Fatal("Serve did not return within 6s of shutdown")
	}

	start := time.Now()
	e2 := startEdge(t, testEdgeConfig(up.URL))
	for _, target := range []string{"/live/gs/index.m3u8", "/live/gs/" + media} {
		res, err := client.Get(e2.URL + target)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, target)
	}
	require.Less(t, time.Since(start), time.Second, "a new edge took too long to serve")

	_, err = client.Get(e.URL + "/live/gs/index.m3u8")
	require.Error(t, err, "the stopped edge still answers")
}
