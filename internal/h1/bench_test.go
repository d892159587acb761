package h1

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// discardConn is memConn that forgets what is written.
type discardConn struct{ memConn }

func (c *discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *discardConn) Read(p []byte) (int, error)  { return c.in.Read(p) }

// BenchmarkServeKeepAlive measures the server's own per-request work (no
// syscalls): pipelined GETs of a small object with the headers the serving
// core sets.
func BenchmarkServeKeepAlive(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 3000)
	cc := []string{"public, max-age=31536000, immutable"}
	ct := []string{"audio/mp4"}
	served := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		hd := w.Header()
		hd["Content-Type"] = ct
		hd["Cache-Control"] = cc
		hd["Content-Length"] = []string{"3000"}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
	req := "GET /live/demo/p123.4.m4s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n"
	in := []byte(strings.Repeat(req, b.N))
	s := &Server{Handler: h, WriteTimeout: time.Hour}
	s.init()
	mc := &discardConn{memConn{in: bytes.NewReader(in)}}
	c := newConn(s, mc)
	s.track(c)
	b.ReportAllocs()
	b.ResetTimer()
	c.serve()
	b.StopTimer()
	if served != b.N {
		b.Fatalf("served %d of %d requests", served, b.N)
	}
}
