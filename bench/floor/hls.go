//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/amphi-live/amphi/internal/rawsock"
)

// The -hls client drives a real amphi origin or edge with the floor's
// listeners: the same epoll loop and raw calls, and the two exchanges per
// part an LL-HLS player makes (the blocking playlist request for the next
// part, with _HLS_skip, then that part), so that amphi's cost per part can
// be read with a client that costs the floor's, not amphi's generator's.
// It only knows amphi's part names (SESSION-MSN.PART.m4s, from the preload
// hint), and it measures each part's spread: when a listener got it, after
// the first listener that got it.

type hlsConn struct {
	fd       int
	state    int    // what the outstanding request is: hlsJoin, hlsPlaylist or hlsPart
	msn, idx int64  // the part asked for
	session  []byte // the part names' prefix, through the '-'
	inSeg    bool   // the last playlist names or hints msn.idx+1
	req      []byte
	got      []gotPart
}

const (
	hlsJoin = iota
	hlsPlaylist
	hlsPart
)

// gotPart is when a listener got a part (key: tick, or msn<<8 | part; the
// presets cut far fewer than 256 parts a segment).
type gotPart struct {
	key int64
	at  time.Time
}

var errNoHint = errors.New("playlist without a part preload hint")

// hint finds the preload-hinted part in a playlist: its prefix, MSN and part.
func hint(body []byte) (session []byte, msn, idx int64, err error) {
	const tag = `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="`
	i := bytes.Index(body, []byte(tag))
	if i < 0 {
		return nil, 0, 0, errNoHint
	}
	uri := body[i+len(tag):]
	j := bytes.IndexByte(uri, '"')
	if j < 0 {
		return nil, 0, 0, errNoHint
	}
	uri = uri[:j]
	name, ok := bytes.CutSuffix(uri, []byte(".m4s"))
	dash := bytes.LastIndexByte(name, '-')
	dot := bytes.LastIndexByte(name, '.')
	if !ok || dash < 0 || dot < dash {
		return nil, 0, 0, fmt.Errorf("hint %q: not SESSION-MSN.PART.m4s", uri)
	}
	msn, err1 := strconv.ParseInt(string(name[dash+1:dot]), 10, 64)
	idx, err2 := strconv.ParseInt(string(name[dot+1:]), 10, 64)
	if err1 != nil || err2 != nil {
		return nil, 0, 0, fmt.Errorf("hint %q: not SESSION-MSN.PART.m4s", uri)
	}
	return name[:dash+1], msn, idx, nil
}

// partName appends SESSION-MSN.PART.m4s to b.
func partName(b, session []byte, msn, idx int64) []byte {
	b = append(b, session...)
	b = strconv.AppendInt(b, msn, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, idx, 10)
	return append(b, ".m4s"...)
}

func (c *hlsConn) get(dir, file []byte, query string) error {
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, dir...)
	c.req = append(c.req, file...)
	c.req = append(c.req, query...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: floor\r\n\r\n"...)
	_, err := rawsock.Send(c.fd, c.req)
	return err
}

func (c *hlsConn) askPlaylist(dir, file []byte) error {
	c.state = hlsPlaylist
	q := "?_HLS_msn=" + strconv.FormatInt(c.msn, 10) + "&_HLS_part=" + strconv.FormatInt(c.idx, 10) + "&_HLS_skip=YES"
	return c.get(dir, file, q)
}

// answered moves c on after a whole response; body is its body.
func (c *hlsConn) answered(dir, file, body []byte, ok bool, now time.Time, scratch []byte) error {
	if !ok {
		c.state = hlsJoin // start over from a plain playlist
		return c.get(dir, file, "")
	}
	switch c.state {
	case hlsJoin:
		session, msn, idx, err := hint(body)
		if err != nil {
			return err
		}
		c.session, c.msn, c.idx = append(c.session[:0], session...), msn, idx
		return c.askPlaylist(dir, file)
	case hlsPlaylist:
		if session, _, _, err := hint(body); err == nil && !bytes.Equal(session, c.session) {
			c.state = hlsJoin // a new session of the broadcast
			return c.get(dir, file, "")
		}
		// The part after this one is msn.idx+1 when the playlist names or
		// hints it, else the first of the next segment.
		next := partName(append(scratch[:0], '-'), nil, c.msn, c.idx+1)
		c.inSeg = bytes.Contains(body, append(next, '"'))
		c.state = hlsPart
		return c.get(dir, partName(scratch[:0], c.session, c.msn, c.idx), "")
	default:
		c.got = append(c.got, gotPart{c.msn<<8 | c.idx, now})
		if c.inSeg {
			c.idx++
		} else {
			c.msn, c.idx = c.msn+1, 0
		}
		return c.askPlaylist(dir, file)
	}
}

// runHLSClient runs n listeners of the media playlist at path (e.g.
// /live/demo/audio.m3u8) on the server at addr for duration.
func runHLSClient(addr, path string, n int, duration, ramp, period time.Duration) (clientReport, error) {
	r := clientReport{hls: true, listeners: n}
	slash := bytes.LastIndexByte([]byte(path), '/')
	if slash < 0 {
		return r, fmt.Errorf("-hls %q: want a path like /live/NAME/audio.m3u8", path)
	}
	dir, file := []byte(path[:slash+1]), []byte(path[slash+1:])
	l, err := dialListeners(addr, n, 32<<10)
	if err != nil {
		return r, err
	}
	defer l.close()
	cs := make([]hlsConn, n)
	for i := range cs {
		cs[i].fd = l.fds[i]
		if err := cs[i].get(dir, file, ""); err != nil {
			return r, err
		}
	}
	scratch := make([]byte, 0, 256)
	r.cpu, r.wall, err = l.run(l.start.Add(duration), &r.errs, func(i int, resp []byte) error {
		c := &cs[i]
		ok := bytes.HasPrefix(resp, []byte("HTTP/1.1 200 "))
		if !ok {
			// Each error makes its listener start over at once: give up
			// on a server that keeps failing rather than spin.
			if r.errs++; r.errs > 10*n+100 {
				return fmt.Errorf("%d error answers: is %s serving %s?", r.errs, addr, path)
			}
		}
		body := resp[bytes.Index(resp, []byte("\r\n\r\n"))+4:]
		if c.state == hlsPart && ok {
			r.parts++
		}
		return c.answered(dir, file, body, ok, time.Now(), scratch)
	})
	if err != nil {
		return r, err
	}
	got := make([][]gotPart, n)
	for i := range cs {
		got[i] = cs[i].got
	}
	r.spreadStats(got, l.start.Add(ramp), period, true)
	return r, nil
}
