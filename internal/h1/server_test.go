package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// start serves h on 127.0.0.1:0 and returns the address; the server shuts
// down when the test ends.
func start(t *testing.T, s *Server) string {
	t.Helper()
	s.Goroutines = goroutineModel(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		require.ErrorIs(t, <-errc, ErrServerClosed)
	})
	return ln.Addr().String()
}

// goroutineModel reports whether t runs under TestGoroutineModel, which
// runs the server's tests again with a goroutine per connection (the
// default is event loops, where there are any).
func goroutineModel(t *testing.T) bool {
	return strings.HasPrefix(t.Name(), "TestGoroutineModel/")
}

// echo answers with what it saw of the request.
func echo(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s host=%s q=%s body=%q x=%q", r.Method, r.URL.Path, r.Proto, r.Host,
		r.URL.RawQuery, b, r.Header["X-Test"])
}

// raw sends request bytes on a new connection and reads responses for
// methods (one per request), returning them with their bodies read.
func raw(t *testing.T, addr, requests string, methods ...string) (*bufio.Reader, net.Conn, []*http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, requests)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	var out []*http.Response
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		out = append(out, resp)
	}
	return br, c, out
}

func bodyOf(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return string(b)
}

// requireClosed checks that the server closed c.
func requireClosed(t *testing.T, br *bufio.Reader) {
	t.Helper()
	_, err := br.ReadByte()
	require.ErrorIs(t, err, io.EOF)
}

func TestClientRoundTrips(t *testing.T) {
	var accepted atomic.Int32
	s := &Server{Handler: http.HandlerFunc(echo)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go s.Serve(countingListener{ln, &accepted})
	t.Cleanup(func() { s.Close() })

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for i := range 20 {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/live/a/b.m3u8?_HLS_msn=3", nil)
		req.Header.Set("X-Test", fmt.Sprint(i))
		resp, err := client.Do(req)
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		require.NotEmpty(t, resp.Header.Get("Date"))
		require.Equal(t, "text/plain", resp.Header.Get("Content-Type"))
		require.Equal(t, fmt.Sprintf(`GET /live/a/b.m3u8 HTTP/1.1 host=%s q=_HLS_msn=3 body="" x=["%d"]`, ln.Addr(), i), bodyOf(t, resp))
		require.EqualValues(t, resp.ContentLength, len(fmt.Sprintf(`GET /live/a/b.m3u8 HTTP/1.1 host=%s q=_HLS_msn=3 body="" x=["%d"]`, ln.Addr(), i)))
		resp.Body.Close()
	}
	resp, err := client.Post("http://"+ln.Addr().String()+"/p", "text/plain", strings.NewReader("hello"))
	require.NoError(t, err)
	require.Contains(t, bodyOf(t, resp), `body="hello"`)
	resp.Body.Close()
	require.EqualValues(t, 1, accepted.Load(), "keep-alive must reuse one connection")
}

type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(echo)})
	reqs := "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" +
		"POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nxy\r\n1\r\nz\r\n0\r\nTrailer: t\r\n\r\n" +
		"HEAD /4 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /5?a=b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	br, _, resps := raw(t, addr, reqs, "GET", "POST", "POST", "HEAD", "GET")
	require.Contains(t, bodyOf(t, resps[0]), "GET /1 ")
	require.Contains(t, bodyOf(t, resps[1]), `POST /2 HTTP/1.1 host=h q= body="abc"`)
	require.Contains(t, bodyOf(t, resps[2]), `POST /3 HTTP/1.1 host=h q= body="xyz"`)
	require.Empty(t, bodyOf(t, resps[3]))
	require.Positive(t, resps[3].ContentLength, "HEAD keeps the length a GET would have")
	require.Contains(t, bodyOf(t, resps[4]), "q=a=b")
	require.True(t, resps[4].Close)
	requireClosed(t, br)
}

func TestResponseFraming(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	mux := http.NewServeMux()
	mux.HandleFunc("/known", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		io.WriteString(w, big[:10])
		io.WriteString(w, big[10:])
	})
	mux.HandleFunc("/unknown", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(big); i += 1024 {
			io.WriteString(w, big[i:i+1024])
		}
	})
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		io.WriteString(w, "b")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "abc")
	})
	mux.HandleFunc("/inject", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Bad", "a\r\nSet-Cookie: evil=1")
	})
	mux.HandleFunc("/range", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(big))
	})
	addr := start(t, &Server{Handler: mux})

	t.Run("known length, large", func(t *testing.T) {
		_, _, rs := raw(t, addr, "GET /known HTTP/1.1\r\nHost: h\r\n\r\n", "GET")
		require.Equal(t, big, bodyOf(t, rs[0]))
		require.EqualValues(t, len(big), rs[0].ContentLength)
	})
	t.Run("unknown length goes chunked", func(t *testing.T) {
		_, _, rs := raw(t, addr, "GET /unknown HTTP/1.1\r\nHost: h\r\n\r\nGET /empty HTTP/1.1\r\nHost: h\r\n\r\n", "GET", "GET")
		require.Equal(t, []string{"chunked"}, rs[0].TransferEncoding)
		require.Equal(t, big, bodyOf(t, rs[0]))
		require.EqualValues(t, 0, rs[1].ContentLength)
	})
	t.Run("HTTP/1.0 unknown length ends at close", func(t *testing.T) {
		br, _, rs := raw(t, addr, "GET /unknown HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET")
		require.Equal(t, big, bodyOf(t, rs[0]))
		requireClosed(t, br)
	})
	t.Run("HTTP/1.0 keep-alive", func(t *testing.T) {
		_, _, rs := raw(t, addr, "GET /empty HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /empty HTTP/1.0\r\n\r\n", "GET", "GET")
		require.Equal(t, "keep-alive", rs[0].Header.Get("Connection"))
		require.True(t, rs[1].Close)
	})
	t.Run("flush", func(t *testing.T) {
		_, _, rs := raw(t, addr, "GET /flush HTTP/1.1\r\nHost: h\r\n\r\n", "GET")
		require.Equal(t, "ab", bodyOf(t, rs[0]))
	})
	t.Run("204 has no body or length", func(t *testing.T) {
		_, _, rs := raw(t, addr, "GET /nocontent HTTP/1.1\r\nHost: h\r\n\r\nGET /empty HTTP/1.1\r\nHost: h\r\n\r\n", "GET", "GET")
		require.Equal(t, 204, rs[0].StatusCode)
		require.Empty(t, rs[0].Header.Get("Content-Length"))
		require.Equal(t, 200, rs[1].StatusCode)
	})
	t.Run("short body closes", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		io.WriteString(c, "GET /short HTTP/1.1\r\nHost: h\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		require.NoError(t, err)
		require.True(t, strings.HasSuffix(string(b), "\r\n\r\nabc"), "%q", b)
	})
	t.Run("no header injection", func(t *testing.T) {
		_, _, rs := raw(t, addr, "GET /inject HTTP/1.1\r\nHost: h\r\n\r\n", "GET")
		require.Empty(t, rs[0].Header.Get("Set-Cookie"))
		require.Equal(t, "a  Set-Cookie: evil=1", rs[0].Header.Get("X-Bad"))
	})
	t.Run("range", func(t *testing.T) {
		_, _, rs := raw(t, addr, "GET /range HTTP/1.1\r\nHost: h\r\nRange: bytes=10-19\r\n\r\n", "GET")
		require.Equal(t, 206, rs[0].StatusCode)
		require.Equal(t, big[10:20], bodyOf(t, rs[0]))
	})
}

func TestMalformedRequests(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(echo), MaxHeaderBytes: 1024, MaxBodyBytes: 100})
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400},
		{"bad request line", "GET /\r\nHost: a\r\n\r\n", 400},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"relative target", "GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"star not options", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"HTTP/2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"bad version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400},
		{"obs fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"control in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"two CLs", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
		{"bad CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"expect other", "GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417},
		{"body too large", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 413},
		{"head too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br, _, rs := raw(t, addr, tc.req, "GET")
			require.Equal(t, tc.status, rs[0].StatusCode, bodyOf(t, rs[0]))
			require.True(t, rs[0].Close)
			requireClosed(t, br)
		})
	}

	t.Run("malformed chunk", func(t *testing.T) {
		br, _, rs := raw(t, addr, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "POST")
		require.Equal(t, 400, rs[0].StatusCode)
		requireClosed(t, br)
	})
	t.Run("chunked body too large", func(t *testing.T) {
		br, _, rs := raw(t, addr, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n", "POST")
		require.Equal(t, 400, rs[0].StatusCode)
		requireClosed(t, br)
	})
	t.Run("absolute form and options star", func(t *testing.T) {
		_, _, rs := raw(t, addr, "GET http://Other:80/x?y=1 HTTP/1.1\r\nHost: a\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET /a%20b HTTP/1.1\r\nhost: a\r\n\r\n", "GET", "OPTIONS", "GET")
		require.Contains(t, bodyOf(t, rs[0]), "GET /x HTTP/1.1 host=Other:80 q=y=1")
		require.Contains(t, bodyOf(t, rs[1]), "OPTIONS * ")
		require.Contains(t, bodyOf(t, rs[2]), "GET /a b ")
	})
}

func TestUnreadBodyDrainedOrClosed(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})})
	_, _, rs := raw(t, addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n", "POST", "GET")
	require.Equal(t, "ok", bodyOf(t, rs[1]))

	// A client waiting for 100 Continue the handler never asked for: the
	// connection closes rather than read a body that may never come.
	br, _, _ := raw(t, addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", "POST")
	requireClosed(t, br)
}

func TestExpectContinue(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(echo)})
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	line, _ = br.ReadString('\n')
	require.Equal(t, "\r\n", line)
	io.WriteString(c, "hi")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Contains(t, bodyOf(t, resp), `body="hi"`)
}

func TestTimeouts(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(echo), IdleTimeout: 300 * time.Millisecond, ReadHeaderTimeout: 300 * time.Millisecond})
	t.Run("idle", func(t *testing.T) {
		br, _, _ := raw(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET")
		t0 := time.Now()
		requireClosed(t, br)
		require.Less(t, time.Since(t0), 5*time.Second)
	})
	t.Run("slow head", func(t *testing.T) {
		br, _, _ := raw(t, addr, "GET / HTTP/1.1\r\nHost:")
		t0 := time.Now()
		requireClosed(t, br)
		require.Less(t, time.Since(t0), 5*time.Second)
	})
}

func TestShutdownClosesIdleAndLetsRequestsFinish(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			close(entered)
			<-release
			if r.Context().Err() != nil {
				// Shutdown lets handlers answer; only Close cancels them.
				http.Error(w, "context cancelled by Shutdown", 500)
				return
			}
		}
		io.WriteString(w, "done")
	})}
	s.Goroutines = goroutineModel(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()

	idle, _, _ := raw(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET")
	hc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer hc.Close()
	io.WriteString(hc, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	requireClosed(t, idle)
	require.ErrorIs(t, <-served, ErrServerClosed)
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "the listener is closed")

	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(hc), nil)
	require.NoError(t, err)
	require.Equal(t, "done", bodyOf(t, resp))
	require.True(t, resp.Close, "the last response says the connection closes")
	require.NoError(t, <-shut)
}

func TestMaxConns(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(echo), MaxConns: 1})
	_, first, _ := raw(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET")
	c, err := net.Dial("tcp", addr) // queued by the kernel, not accepted
	require.NoError(t, err)
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "second connection served while the first is open: %v", err)

	// Closing the first connection frees the slot.
	first.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
}

func TestHandlerPanicClosesConnection(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "fine")
	})})
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
	n, err := c.Read(make([]byte, 1))
	require.Zero(t, n)
	require.Error(t, err)
	_, _, rs := raw(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET")
	require.Equal(t, "fine", bodyOf(t, rs[0]))
}

// TestManyPipelinedRequests crosses the read buffer's end many times, with
// heads split between two reads.
func TestManyPipelinedRequests(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(echo)})
	var reqs strings.Builder
	methods := make([]string, 300)
	for i := range methods {
		methods[i] = "GET"
		fmt.Fprintf(&reqs, "GET /r/%d?%s HTTP/1.1\r\nHost: h\r\nX-Test: %d\r\n\r\n", i, strings.Repeat("q", i%97), i)
	}
	_, _, rs := raw(t, addr, reqs.String(), methods...)
	for i, r := range rs {
		require.Contains(t, bodyOf(t, r), fmt.Sprintf("GET /r/%d HTTP/1.1", i))
	}
}

// TestRefusedUploadSeesItsAnswer: a handler that refuses a streamed body
// without reading it must still get its answer to the client, which keeps
// sending (a refused publisher), not a connection reset.
func TestRefusedUploadSeesItsAnswer(t *testing.T) {
	for _, closes := range []bool{false, true} {
		t.Run(fmt.Sprint("handler closes=", closes), func(t *testing.T) { testRefusedUpload(t, closes) })
	}
}

func testRefusedUpload(t *testing.T, handlerCloses bool) {
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if handlerCloses {
			w.Header().Set("Connection", "close") // as the origin's ingest does
		}
		http.Error(w, "wrong stream key", http.StatusForbidden)
	})})
	for range 20 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "PUT /ingest/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
		stop := make(chan struct{})
		go func() {
			chunk := "1000\r\n" + strings.Repeat("x", 0x1000) + "\r\n"
			for i := 0; i < 200; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		close(stop)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Contains(t, bodyOf(t, resp), "wrong stream key")
		c.Close()
	}
}

// A Go client streaming a body it has not finished must get the refusal,
// not "connection reset": the server lingers before it closes, whether
// the handler asked to close or the unread body made it.
func TestRefusedStreamReachesGoClient(t *testing.T) {
	for _, closes := range []bool{false, true} {
		t.Run(fmt.Sprint("handler closes=", closes), func(t *testing.T) {
			addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if closes {
					w.Header().Set("Connection", "close")
				}
				http.Error(w, "wrong stream key", http.StatusForbidden)
			})})
			for range 20 {
				pr, pw := io.Pipe()
				go func() {
					chunk := []byte(strings.Repeat("x", 188*7))
					for i := range 300 {
						if _, err := pw.Write(chunk); err != nil {
							return
						}
						if i > 50 { // a burst first, then paced
							time.Sleep(5 * time.Millisecond)
						}
					}
					pw.Close()
				}()
				req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/ingest/x", pr)
				require.NoError(t, err)
				res, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
				pr.CloseWithError(errors.New("done"))
				require.NoError(t, err)
				require.Equal(t, http.StatusForbidden, res.StatusCode)
				res.Body.Close()
			}
		})
	}
}

func TestTrimOWS(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		" \t ":           "",
		"gzip":           "gzip",
		" \tgzip, br\t ": "gzip, br",
		"a b":            "a b",
		"\ta\tb ":        "a\tb",
	} {
		require.Equal(t, want, trimOWS(in), "%q", in)
	}
}
