package h1

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"testing"
)

func TestInternTable(t *testing.T) {
	tab := newInternTable()
	a := tab.get([]byte("/live/demo/a.m3u8?_HLS_msn=3&_HLS_part=1"))
	b := tab.get([]byte("/live/demo/a.m3u8?_HLS_msn=3&_HLS_part=1"))
	if a != b || a != "/live/demo/a.m3u8?_HLS_msn=3&_HLS_part=1" {
		t.Fatalf("got %q and %q", a, b)
	}
	if n := testing.AllocsPerRun(100, func() { tab.get([]byte("Host: 127.0.0.1:8080")) }); n != 0 {
		t.Errorf("a repeated string allocated %.1f times per get", n)
	}
	// Far more distinct strings than slots: each still comes back intact,
	// whichever slot it shares.
	for i := range 4 * internSlots {
		want := fmt.Sprintf("/live/b%d/p%d.m4s", i%7, i)
		if got := tab.get([]byte(want)); got != want {
			t.Fatalf("get(%q) = %q", want, got)
		}
	}
	long := bytes.Repeat([]byte("x"), maxIntern+1)
	if got := tab.get(long); got != string(long) {
		t.Fatalf("long string came back as %d bytes", len(got))
	}
	// A string handed out stays what it was when its bytes are reused.
	buf := []byte("GET-target-1")
	s := tab.get(buf)
	copy(buf, "XXXXXXXXXXXX")
	if s != "GET-target-1" {
		t.Fatalf("interned string changed with its source bytes: %q", s)
	}
}

// TestParseAllocatesNothing: a request whose target and header lines were
// seen before (every listener's, after the first of each part) is parsed
// without allocating, so the hot path makes no garbage.
func TestParseAllocatesNothing(t *testing.T) {
	s := &Server{Handler: nil}
	s.init()
	c := newConn(s, &memConn{in: bytes.NewReader(nil)})
	heads := [][]byte{
		[]byte("GET /live/demo/a.m3u8?_HLS_msn=12&_HLS_part=3 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: hls.js\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n\r\n"),
		[]byte("HEAD /live/demo/p12.3.m4s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: hls.js\r\nRange: bytes=0-99\r\n\r\n"),
	}
	for _, head := range heads {
		if _, err := c.parse(head); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { c.parse(head) }); n != 0 {
			t.Errorf("parsing %q allocated %.1f times per request", head[:20], n)
		}
	}
	if c.req.Method != "HEAD" || c.req.URL.Path != "/live/demo/p12.3.m4s" || c.req.Header.Get("Range") != "bytes=0-99" ||
		c.req.Host != "127.0.0.1:8080" {
		t.Fatalf("parsed %s %s Host %q Range %q", c.req.Method, c.req.URL.Path, c.req.Host, c.req.Header.Get("Range"))
	}
}

// TestInternBucketKeepsTwo: two strings that share a bucket both stay, so
// alternating between them allocates nothing; a third evicts the one used
// less recently.
func TestInternBucketKeepsTwo(t *testing.T) {
	tab := newInternTable()
	bucket := func(s string) uint64 { return maphash.String(tab.seed, s) & (internSlots/2 - 1) }
	var same []string
	for i := 0; len(same) < 3; i++ {
		s := fmt.Sprintf("/live/demo/p%d.m4s", i)
		if len(same) == 0 || bucket(s) == bucket(same[0]) {
			same = append(same, s)
		}
	}
	a, b, c := []byte(same[0]), []byte(same[1]), []byte(same[2])
	tab.get(a)
	tab.get(b)
	if n := testing.AllocsPerRun(100, func() { tab.get(a); tab.get(b) }); n != 0 {
		t.Errorf("two strings in one bucket allocated %.1f times per pair of gets", n)
	}
	tab.get(a) // b is now the less recently used
	tab.get(c)
	held := map[string]bool{}
	for i := range 2 {
		if p := tab.buckets[bucket(same[0])].slots[i].Load(); p != nil {
			held[*p] = true
		}
	}
	if !held[same[0]] || !held[same[2]] || held[same[1]] {
		t.Errorf("after using %q, %q, %q: bucket holds %v; want the first and the third", a, b, c, held)
	}
}
