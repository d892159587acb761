package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/internal/evloop"
)

func testTarget(t *testing.T, rawURL string) *target {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	tg, err := newTarget(context.Background(), u)
	require.NoError(t, err)
	return tg
}

func soon() time.Time { return time.Now().Add(5 * time.Second) }

// rawServer answers every connection with handle, for responses net/http
// would not produce.
func rawServer(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// readRequest consumes one request head.
func readRequest(br *bufio.Reader) bool {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if line == "\r\n" {
			return true
		}
	}
}

// eachModel runs body with a conn to url as each listener model makes
// requests: from a goroutine, and as a task of an event loop where there
// are loops. body reports with assert, not require: on a loop it does not
// run on the test's goroutine.
func eachModel(t *testing.T, url string, local netip.Addr, body func(t *testing.T, c *conn)) {
	t.Helper()
	t.Run("goroutine", func(t *testing.T) {
		c := newConn(testTarget(t, url), local)
		defer c.close()
		body(t, c)
	})
	if evloop.Available {
		t.Run("loop", func(t *testing.T) {
			loopConn(t, url, local, func(c *conn) { body(t, c) })
		})
	}
}

// models is how many runs eachModel makes.
func models() int64 {
	if evloop.Available {
		return 2
	}
	return 1
}

func TestConnKeepsOneConnectionAlive(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.URL.RequestURI()))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	eachModel(t, srv.URL, netip.Addr{}, func(t *testing.T, c *conn) {
		var body []byte
		for i := range 20 {
			path := "/x?_HLS_msn=" + string(rune('a'+i))
			res, err := c.get(soon(), []byte(path), &body)
			if !assert.NoError(t, err) {
				return
			}
			assert.Equal(t, 200, res.status)
			assert.Equal(t, path, string(body))
			assert.EqualValues(t, len(path), res.n)
			assert.False(t, res.held.Before(res.sent))
		}
		assert.Equal(t, 1, c.dials)
	})
	require.EqualValues(t, models(), conns.Load(), "one connection for each model")
}

// Plain TCP connections take the raw path (the request written inside the
// response's read); TLS ones the net.Conn path. Both keep one connection.
func TestConnOverTLSAndRaw(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.URL.RequestURI()))
	})
	for _, tc := range []struct {
		name string
		srv  *httptest.Server
		raw  bool
	}{
		{"http", httptest.NewServer(handler), rawAvailable},
		{"https", httptest.NewTLSServer(handler), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.srv.Close()
			tg := testTarget(t, tc.srv.URL)
			if tg.tls != nil {
				tg.tls.RootCAs = tc.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			}
			c := newConn(tg, netip.Addr{})
			defer c.close()
			var body []byte
			for i := range 5 {
				path := "/p" + strings.Repeat("x", i)
				res, err := c.get(soon(), []byte(path), &body)
				require.NoError(t, err)
				require.Equal(t, 200, res.status)
				require.Equal(t, path, string(body))
			}
			require.Equal(t, 1, c.dials)
			require.Equal(t, tc.raw, c.raw != nil)
		})
	}
}

// A request larger than the socket takes at once is finished with a
// write that waits for room (on a loop, the loop waits) before the answer
// is read.
func TestConnRawRequestThatFillsTheSocket(t *testing.T) {
	if !rawAvailable {
		t.Skip("no raw path on this system")
	}
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for readRequest(br) {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		}
	})
	eachModel(t, addr, netip.Addr{}, func(t *testing.T, c *conn) {
		var body []byte
		_, err := c.get(soon(), []byte("/small"), &body)
		assert.NoError(t, err)
		if c.ls != nil {
			assert.NoError(t, setLoopSendBuffer(c, 4096))
		} else {
			assert.NoError(t, c.nc.(*net.TCPConn).SetWriteBuffer(4096))
		}
		path := []byte("/" + strings.Repeat("a", 1<<20))
		for range 2 {
			res, err := c.get(soon(), path, &body)
			assert.NoError(t, err)
			assert.Equal(t, 200, res.status)
			assert.Equal(t, "ok", string(body))
		}
		assert.Equal(t, 1, c.dials)
	})
}

func TestConnReadsChunkedBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for _, s := range []string{"#EXTM3U\n", strings.Repeat("x", 5000), "\nend"} {
			w.Write([]byte(s))
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	eachModel(t, srv.URL, netip.Addr{}, func(t *testing.T, c *conn) {
		var body []byte
		for range 2 {
			_, err := c.get(soon(), []byte("/"), &body)
			assert.NoError(t, err)
			assert.Equal(t, "#EXTM3U\n"+strings.Repeat("x", 5000)+"\nend", string(body))
			// Dropped bodies are counted the same.
			res, err := c.get(soon(), []byte("/"), nil)
			assert.NoError(t, err)
			assert.EqualValues(t, 5012, res.n)
		}
	})
}

func TestConnResponseShapes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer string
		status int
		body   string
		err    errKind // -1: none
	}{
		{"until close", "HTTP/1.0 200 OK\r\n\r\nhello", 200, "hello", -1},
		{"early hints first", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", -1},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", -1},
		{"not found", "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", 404, "nope", -1},
		{"not http", "SSH-2.0-OpenSSH\r\n", 0, "", errKindBadResponse},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 0, "", errKindBadResponse},
		{"cut short", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 200, "", errKindClosed},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 200, "", errKindBadResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
				if readRequest(br) {
					c.Write([]byte(tc.answer))
				}
			})
			eachModel(t, addr, netip.Addr{}, func(t *testing.T, c *conn) {
				var body []byte
				res, err := c.get(soon(), []byte("/"), &body)
				if tc.err >= 0 {
					if assert.Error(t, err) {
						assert.Equal(t, tc.err, classify(err), "%v", err)
					}
					return
				}
				assert.NoError(t, err)
				assert.Equal(t, tc.status, res.status)
				assert.Equal(t, tc.body, string(body))
			})
		})
	}
}

func TestConnRedialsAStaleKeepAliveConnection(t *testing.T) {
	// The server answers one request per connection, then closes without
	// saying so: the next request on it fails before any answer and is
	// retried on a fresh connection.
	var conns atomic.Int64
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		if readRequest(br) {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		}
	})
	eachModel(t, addr, netip.Addr{}, func(t *testing.T, c *conn) {
		for range 3 {
			res, err := c.get(soon(), []byte("/"), nil)
			assert.NoError(t, err)
			assert.Equal(t, 200, res.status)
			time.Sleep(10 * time.Millisecond) // let the close land
		}
	})
	require.EqualValues(t, 3*models(), conns.Load())
}

func TestConnFailures(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close()
		eachModel(t, "http://"+addr, netip.Addr{}, func(t *testing.T, c *conn) {
			_, err := c.get(soon(), []byte("/"), nil)
			assert.Equal(t, errKindRefused, classify(err), "%v", err)
		})
	})
	t.Run("timeout", func(t *testing.T) {
		addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			readRequest(br)
			time.Sleep(2 * time.Second)
		})
		eachModel(t, addr, netip.Addr{}, func(t *testing.T, c *conn) {
			start := time.Now()
			_, err := c.get(time.Now().Add(100*time.Millisecond), []byte("/"), nil)
			assert.Equal(t, errKindTimeout, classify(err), "%v", err)
			// Goroutines may fire deadlineSlack late, loops check every ioScan.
			assert.Less(t, time.Since(start), 100*time.Millisecond+deadlineSlack+time.Second)
		})
	})
	t.Run("a shorter deadline after a longer one", func(t *testing.T) {
		// setDeadline keeps a deadline that is late by little, never one
		// that is late by more than deadlineSlack.
		var n atomic.Int32
		addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			for readRequest(br) {
				if n.Add(1) > 1 {
					time.Sleep(3 * time.Second)
				}
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			}
		})
		c := newConn(testTarget(t, addr), netip.Addr{})
		defer c.close()
		_, err := c.get(time.Now().Add(10*time.Second), []byte("/"), nil)
		require.NoError(t, err)
		start := time.Now()
		_, err = c.get(time.Now().Add(100*time.Millisecond), []byte("/"), nil)
		require.Equal(t, errKindTimeout, classify(err), "%v", err)
		require.Less(t, time.Since(start), 100*time.Millisecond+deadlineSlack+time.Second)
	})
	t.Run("closed by the listener", func(t *testing.T) {
		addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			readRequest(br)
			time.Sleep(time.Second)
		})
		c := newConn(testTarget(t, addr), netip.Addr{})
		time.AfterFunc(50*time.Millisecond, c.close)
		_, err := c.get(soon(), []byte("/"), nil)
		require.Error(t, err)
		_, err = c.get(soon(), []byte("/"), nil)
		require.ErrorIs(t, err, errClosed)
	})
}

func TestConnUsesItsSourceAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		w.Write([]byte(host))
	}))
	defer srv.Close()
	eachModel(t, srv.URL, netip.MustParseAddr("127.0.0.7"), func(t *testing.T, c *conn) {
		var body []byte
		_, err := c.get(soon(), []byte("/"), &body)
		assert.NoError(t, err)
		assert.Equal(t, "127.0.0.7", string(body))
	})
}

func TestConnDoesNotAllocatePerRequest(t *testing.T) {
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + strings.Repeat("x", 300))
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		buf := make([]byte, 4096)
		for {
			n, err := br.Read(buf)
			if err != nil {
				return
			}
			if bytes.HasSuffix(buf[:n], []byte("\r\n\r\n")) {
				c.Write(answer)
			}
		}
	})
	eachModel(t, addr, netip.Addr{}, func(t *testing.T, c *conn) {
		var body []byte
		path := []byte("/live/x/audio.m3u8?_HLS_msn=12&_HLS_part=3")
		_, err := c.get(soon(), path, &body)
		assert.NoError(t, err)
		deadline := soon()
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := c.get(deadline, path, &body); err != nil {
				t.Error(err)
			}
		})
		assert.Less(t, allocs, 1.0)
	})
}

func TestResolver(t *testing.T) {
	base, err := url.Parse("http://example.test:8080/live/demo/audio.m3u8?token=a")
	require.NoError(t, err)
	tg := &target{scheme: "http", host: "example.test:8080"}
	r := newResolver(tg, base)
	require.Equal(t, "/live/demo/audio.m3u8?token=a", r.playlistPath())
	for in, want := range map[string]string{
		"123-4.1.m4s":                           "/live/demo/123-4.1.m4s",
		"/other/seg.m4s":                        "/other/seg.m4s",
		"../x/seg.m4s":                          "/live/x/seg.m4s",
		"sub/seg.m4s?v=2":                       "/live/demo/sub/seg.m4s?v=2",
		"http://example.test:8080/abs/seg.m4s":  "/abs/seg.m4s",
		"//example.test:8080/protocol-relative": "/protocol-relative",
	} {
		got, err := r.appendPath(nil, []byte(in))
		require.NoError(t, err, in)
		require.Equal(t, want, string(got), in)
	}
	_, err = r.appendPath(nil, []byte("http://cdn.test/seg.m4s"))
	require.ErrorIs(t, err, errOtherHost)
	require.Equal(t, errKindOtherHost, classify(err))
	require.Zero(t, testing.AllocsPerRun(100, func() {
		_, _ = r.appendPath(make([]byte, 0, 64), []byte("123-4.1.m4s"))
	}))
}

// FuzzReadResponse feeds arbitrary server output to the response reader:
// it must never panic, and what it accepts must be consistent.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), true)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"), true)
	f.Add([]byte("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nuntil close"), true)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, keepBody bool) {
		c := &conn{br: bufio.NewReaderSize(bytes.NewReader(data), readBufSize)}
		var res result
		var body []byte
		bp := &body
		if !keepBody {
			bp = nil
		}
		_, err := c.readResponse(&res, bp)
		if err != nil {
			return
		}
		if res.status < 200 && res.status != 101 || res.status > 999 {
			t.Fatalf("accepted status %d", res.status)
		}
		if len(body) > maxBody {
			t.Fatalf("kept a body of %d bytes", len(body))
		}
		if keepBody && res.n != int64(len(body)) {
			t.Fatalf("counted %d body bytes, kept %d", res.n, len(body))
		}
		if res.n > int64(len(data)) {
			t.Fatalf("counted %d body bytes from %d bytes of input", res.n, len(data))
		}
	})
}
