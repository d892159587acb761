//go:build linux

package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/amphi-live/amphi/internal/testorigin"
)

// TestFloor runs each server and a few listeners over loopback: every
// listener gets a part per tick, every answer goes out whole, and the
// server answers two requests per part.
func TestFloor(t *testing.T) {
	const period = 50 * time.Millisecond
	for _, mode := range []string{"loop", "goroutines", "coro"} {
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
				srv := serveGoroutines
				if mode == "coro" {
					srv = serveCoro
				}
				go func() {
					r, err := srv(ln, period, 1500, 620, stop)
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

// TestHLSClient follows a real amphi origin: every listener gets every
// part in order, with no errors.
func TestHLSClient(t *testing.T) {
	base := testorigin.Start(t, "low", "floor")
	addr := strings.TrimPrefix(base, "http://")
	// The first playlist comes with the first segment, about a second in.
	time.Sleep(2 * time.Second)
	c, err := runHLSClient(addr, "/live/floor/audio.m3u8", 10, 3*time.Second, time.Second, 213*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(c)
	// 3 s of 213 ms parts: about 14 each.
	if c.errs != 0 || c.parts < 10*10 {
		t.Errorf("%d parts with %d errors, want at least %d and none", c.parts, c.errs, 10*10)
	}
	if c.late != 0 {
		t.Errorf("%d parts more than a part after the first listener's copy", c.late)
	}
}

func TestHint(t *testing.T) {
	session, msn, idx, err := hint([]byte("#EXTM3U\n#EXT-X-PART:DURATION=0.2,URI=\"ab12-7.3.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ab12-7.4.m4s\"\n"))
	if err != nil || string(session) != "ab12-" || msn != 7 || idx != 4 {
		t.Errorf("hint = %q %d %d %v, want ab12- 7 4", session, msn, idx, err)
	}
	if got := string(partName(nil, session, 8, 0)); got != "ab12-8.0.m4s" {
		t.Errorf("partName = %q", got)
	}
	for _, bad := range []string{
		"#EXTM3U\n",
		"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part.m4s\"\n",
		"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a-1.x.m4s\"\n",
		"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a-1.2.m4s\n",
	} {
		if _, _, _, err := hint([]byte(bad)); err == nil {
			t.Errorf("hint(%q): no error", bad)
		}
	}
}

// The listeners parse what the server sends, and the server what they
// send: no parser may panic or return nonsense.
func FuzzHint(f *testing.F) {
	f.Add([]byte("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ab12-7.4.m4s\"\n"))
	f.Add([]byte("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"-.m4s\""))
	f.Add([]byte("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a.1-2.m4s\""))
	f.Fuzz(func(t *testing.T, b []byte) {
		if session, _, _, err := hint(b); err == nil && !bytes.HasSuffix(session, []byte("-")) {
			t.Errorf("session %q does not end in '-'", session)
		}
	})
}

func FuzzComplete(f *testing.F) {
	f.Add(answer("audio/mp4", 10))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nabc"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: -500\r\n\r\nabc"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := complete(b); n < 0 || n > len(b) {
			t.Errorf("complete = %d for %d bytes", n, len(b))
		}
	})
}

func FuzzHeldTick(f *testing.F) {
	f.Add([]byte("GET /h123 HTTP/1.1"))
	f.Add([]byte("GET /h-1 HTTP/1.1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, ok := heldTick(b); ok && k <= 0 {
			t.Errorf("heldTick(%q) = %d, true", b, k)
		}
	})
}
