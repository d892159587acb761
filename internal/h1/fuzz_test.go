package h1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// memConn is a net.Conn over fixed input, recording what is written.
type memConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error) {
	// Small reads exercise heads and bodies split across reads.
	if len(p) > 7 {
		p = p[:7]
	}
	return c.in.Read(p)
}
func (c *memConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// failHandler fails the test on any error log: a recovered panic.
type failHandler struct{ t *testing.T }

func (h failHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h failHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.t.Errorf("server logged an error: %s", r.Message)
	}
	return nil
}
func (h failHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h failHandler) WithGroup(string) slog.Handler      { return h }

// FuzzConn feeds arbitrary bytes to a connection: the server must never
// panic, and what it writes must parse as a sequence of responses, one per
// request it read.
func FuzzConn(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /live/x/a.m3u8?_HLS_msn=1&_HLS_part=2 HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\nHEAD / HTTP/1.0\r\n\r\n",
		"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nxy\r\n0\r\nT: t\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://h/x HTTP/1.1\r\nHost: a\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var methods []string
		s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			methods = append(methods, r.Method)
			echo(w, r)
		}), MaxHeaderBytes: 512, MaxBodyBytes: 256, Logger: slog.New(failHandler{t})}
		s.init()
		mc := &memConn{in: bytes.NewReader(in)}
		c := newConn(s, mc)
		s.track(c)
		c.serve()

		// Every response must be well framed.
		br := bufio.NewReader(&mc.out)
		for i := 0; ; i++ {
			if _, err := br.Peek(1); err == io.EOF {
				break
			}
			if i > len(methods) {
				t.Fatalf("more responses than requests (%d)", len(methods))
			}
			// "100 Continue" interim responses come before a final one.
			if line, _ := br.Peek(25); bytes.HasPrefix(line, []byte("HTTP/1.1 100 Continue\r\n\r\n")) {
				br.Discard(25)
				continue
			}
			req := &http.Request{Method: "GET"} // a refused head's answer comes last
			if i < len(methods) {
				req.Method = methods[i]
			}
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("response %d does not parse: %v\n%q", i, err, mc.out.String())
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil && !strings.Contains(err.Error(), "unexpected EOF") {
				t.Fatalf("response %d body: %v", i, err)
			}
		}
	})
}
