package h1

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// prerendered answers /pre/SIZE with WritePrerendered, /mixed the same way
// plus a field set through Header(), /hdr through Header() alone, and
// /twice tries to write after WritePrerendered.
func prerendered(t *testing.T) http.HandlerFunc {
	fields := []byte("Cache-Control: max-age=1\r\nContent-Type: text/plain\r\n")
	return func(w http.ResponseWriter, r *http.Request) {
		pw := w.(interface {
			WritePrerendered(code int, fields, body []byte) error
		})
		switch {
		case strings.HasPrefix(r.URL.Path, "/pre/"):
			n := len(r.URL.Path) - len("/pre/")
			if r.URL.Path == "/pre/big" {
				n = copyLimit + 10
			}
			require.NoError(t, pw.WritePrerendered(http.StatusOK, fields, []byte(strings.Repeat("b", n))))
		case r.URL.Path == "/mixed":
			w.Header().Set("X-Mixed", "yes")
			require.NoError(t, pw.WritePrerendered(http.StatusNotFound, fields, []byte("gone")))
		case r.URL.Path == "/hdr":
			w.Header().Set("X-Only", "here")
			w.Write([]byte("hdr"))
		case r.URL.Path == "/twice":
			require.NoError(t, pw.WritePrerendered(http.StatusOK, fields, []byte("one")))
			_, err := w.Write([]byte("two"))
			require.ErrorIs(t, err, http.ErrContentLength)
			require.Error(t, pw.WritePrerendered(http.StatusOK, fields, nil))
		case r.URL.Path == "/badcode":
			require.Error(t, pw.WritePrerendered(http.StatusNoContent, fields, nil))
			require.Error(t, pw.WritePrerendered(http.StatusContinue, fields, nil))
			w.Write([]byte("fallback"))
		}
	}
}

func TestWritePrerendered(t *testing.T) {
	addr := start(t, &Server{Handler: prerendered(t)})
	reqs := "GET /pre/xxx HTTP/1.1\r\nHost: a\r\n\r\n" +
		"HEAD /pre/xxxx HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /hdr HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /pre/xx HTTP/1.1\r\nHost: a\r\n\r\n" + // X-Only must be gone
		"GET /mixed HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /pre/big HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /twice HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /badcode HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /pre/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	br, _, resps := raw(t, addr, reqs, "GET", "HEAD", "GET", "GET", "GET", "GET", "GET", "GET", "GET")
	for i, r := range resps {
		require.NotEmpty(t, r.Header.Get("Date"), "response %d", i)
	}
	check := func(r *http.Response, code int, body string, cl int64) {
		t.Helper()
		require.Equal(t, code, r.StatusCode)
		require.Equal(t, body, bodyOf(t, r))
		require.Equal(t, cl, r.ContentLength)
	}
	check(resps[0], 200, "bbb", 3)
	require.Equal(t, "max-age=1", resps[0].Header.Get("Cache-Control"))
	require.Equal(t, "text/plain", resps[0].Header.Get("Content-Type"))
	check(resps[1], 200, "", 4)
	check(resps[2], 200, "hdr", 3)
	require.Equal(t, "here", resps[2].Header.Get("X-Only"))
	check(resps[3], 200, "bb", 2)
	require.Empty(t, resps[3].Header.Get("X-Only"), "a field of the previous answer")
	check(resps[4], 404, "gone", 4)
	require.Equal(t, "yes", resps[4].Header.Get("X-Mixed"))
	require.Equal(t, "max-age=1", resps[4].Header.Get("Cache-Control"))
	check(resps[5], 200, strings.Repeat("b", copyLimit+10), copyLimit+10)
	check(resps[6], 200, "one", 3)
	check(resps[7], 200, "fallback", 8)
	check(resps[8], 200, "b", 1)
	require.True(t, resps[8].Close)
	requireClosed(t, br)
}

// An HTTP/1.0 client that asks to keep the connection is told it stays
// open; one that does not is answered and closed.
func TestWritePrerenderedHTTP10(t *testing.T) {
	addr := start(t, &Server{Handler: prerendered(t)})
	br, c, resps := raw(t, addr, "GET /pre/xy HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET")
	require.Equal(t, "bb", bodyOf(t, resps[0]))
	require.False(t, resps[0].Close)
	require.Equal(t, "keep-alive", resps[0].Header.Get("Connection"))
	_, err := io.WriteString(c, "GET /pre/z HTTP/1.0\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	require.NoError(t, err)
	require.Equal(t, "b", bodyOf(t, resp))
	require.True(t, resp.Close)
	requireClosed(t, br)
}
