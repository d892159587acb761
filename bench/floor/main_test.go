//go:build linux

package main

import (
	"net"
	"testing"
	"time"
)

// TestFloor runs each server and a few listeners over loopback: every
// listener gets a part per tick, every answer goes out whole, and the
// server answers two requests per part.
func TestFloor(t *testing.T) {
	const period = 50 * time.Millisecond
	for _, mode := range []string{"loop", "goroutines"} {
		t.Run(mode, func(t *testing.T) {
			stop := make(chan struct{})
			done := make(chan serverReport, 1)
			var addr string
			if mode == "loop" {
				lfd, a, err := listen("127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr = a
				go func() {
					r, err := serve(lfd, period, 1500, 620, stop)
					if err != nil {
						t.Error(err)
					}
					done <- r
				}()
			} else {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr = ln.Addr().String()
				go func() {
					r, err := serveGoroutines(ln, period, 1500, 620, stop)
					if err != nil {
						t.Error(err)
					}
					done <- r
				}()
			}
			c, err := runClient(addr, 20, 2*time.Second, 500*time.Millisecond, period)
			close(stop)
			s := <-done
			if err != nil {
				t.Fatal(err)
			}
			t.Log(c)
			t.Log(s)
			// 2 s at 20 ticks a second: about 40 parts each; allow a slow machine.
			if c.parts < 20*20 || c.errs != 0 {
				t.Errorf("listeners got %d parts with %d errors, want at least %d and none", c.parts, c.errs, 20*20)
			}
			if s.accepted != 20 || s.short != 0 || s.answers < 2*c.parts {
				t.Errorf("server: %+v for %d parts delivered", s, c.parts)
			}
			// A part is answered right after its playlist, which waits for its tick.
			if c.p50 <= 0 || c.p50 > 10*period {
				t.Errorf("p50 %v after the tick, want within (0, %v]", c.p50, 10*period)
			}
		})
	}
}

func TestHeldTick(t *testing.T) {
	for req, want := range map[string]int64{
		"GET /h123 HTTP/1.1":  123,
		"GET /h0 HTTP/1.1":    -1,
		"GET /hx HTTP/1.1":    -1,
		"GET /p HTTP/1.1":     -1,
		"GET /h9":             9,
		"GET /h-4 HTTP/1.1":   -1,
		"GET /h12 3 HTTP/1.1": 12,
	} {
		k, ok := heldTick([]byte(req))
		if (want < 0 && ok) || (want >= 0 && (!ok || k != want)) {
			t.Errorf("heldTick(%q) = %d, %v; want %d", req, k, ok, want)
		}
	}
}

func TestComplete(t *testing.T) {
	msg := answer("audio/mp4", 10)
	if got := complete(msg); got != len(msg) {
		t.Errorf("complete(whole) = %d, want %d", got, len(msg))
	}
	if got := complete(msg[:len(msg)-1]); got != 0 {
		t.Errorf("complete(short body) = %d, want 0", got)
	}
	if got := complete(append(msg, msg[:5]...)); got != len(msg) {
		t.Errorf("complete(whole and more) = %d, want %d", got, len(msg))
	}
	if got := complete([]byte("HTTP/1.1 200 OK\r\n\r\n")); got != 0 {
		t.Errorf("complete(no Content-Length) = %d, want 0", got)
	}
}
