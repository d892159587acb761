package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/amphi-live/amphi/internal/evloop"
)

// Why not net/http: a Transport per listener costs two goroutines per
// connection (readLoop, writeLoop), a channel hand-off between them and a
// Request, Response and Header map per request. At 5,000 listeners and
// 10 requests per listener per second that alone is most of a core. conn is
// the slice of HTTP/1.1 a player uses: GET with keep-alive, Content-Length
// or chunked bodies, no allocation per request.

// Response-level errors.
var (
	errBadResponse = errors.New("malformed HTTP response")
	errTooLarge    = errors.New("response body larger than the limit")
	errClosed      = errors.New("listener stopped")
)

const (
	readBufSize = 4 << 10
	// maxBody bounds a kept (playlist) body; discarded bodies are unbounded.
	maxBody = 8 << 20
	// deadlineSlack is how late a request's deadline may fire (setDeadline).
	deadlineSlack = 500 * time.Millisecond
)

// target is where the listeners connect: resolved once, shared read-only.
type target struct {
	scheme   string // http or https
	host     string // Host header (and TLS server name)
	dialAddr string // ip:port, resolved once so 5,000 listeners do no DNS
	dialAP   netip.AddrPort
	loopback bool
	tls      *tls.Config
}

func newTarget(ctx context.Context, u *url.URL) (*target, error) {
	t := &target{scheme: u.Scheme, host: u.Host}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		t.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
	default:
		return nil, fmt.Errorf("URL scheme %q: want http or https", u.Scheme)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", u.Hostname(), err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolve %s: no address", u.Hostname())
	}
	ip := ips[0]
	for _, a := range ips { // prefer IPv4: the source-address spread is IPv4
		if a.Unmap().Is4() {
			ip = a.Unmap()
			break
		}
	}
	t.dialAP = netip.AddrPortFrom(ip, mustPort(port))
	t.dialAddr = t.dialAP.String()
	t.loopback = ip.IsLoopback()
	return t, nil
}

func mustPort(p string) uint16 {
	var n uint16
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint16(c-'0')
	}
	return n
}

// conn is one keep-alive HTTP/1.1 connection, as a player holds it. One
// goroutine makes requests; close may come from any goroutine. A conn of
// an event loop (lp set) is used by its tasks only, close included.
type conn struct {
	t      *target
	dialer net.Dialer
	local  netip.Addr
	br     *bufio.Reader
	req    []byte

	lp *evloop.Loop // the event loop whose tasks make the requests; nil: a goroutine
	ls *loopSock    // the loop's socket; nil until dialled

	mu     sync.Mutex
	nc     net.Conn
	raw    *rawIO // nc read raw, the request written in the read; nil for TLS
	closed bool

	reused   bool      // nc has carried a request: a failure before any answer is retried once
	deadline time.Time // nc's deadline (setDeadline)
	dials    int
}

func newConn(t *target, local netip.Addr) *conn {
	c := &conn{t: t, local: local}
	if local.IsValid() {
		c.dialer.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	return c
}

// close stops the connection now; requests fail with errClosed from then on.
func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.ls != nil {
		c.ls.close()
		c.ls = nil
	}
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// drop closes the current TCP connection; the next request dials anew.
func (c *conn) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ls != nil {
		c.ls.close()
		c.ls = nil
	}
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

func (c *conn) current() (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	return c.nc, nil
}

func (c *conn) dial(deadline time.Time) (net.Conn, error) {
	c.dialer.Deadline = deadline
	nc, err := c.dialer.Dial("tcp", c.t.dialAddr)
	if err != nil {
		return nil, err
	}
	if c.t.tls != nil {
		tc := tls.Client(nc, c.t.tls)
		tc.SetDeadline(deadline)
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		nc.Close()
		return nil, errClosed
	}
	c.nc, c.reused, c.dials, c.deadline = nc, false, c.dials+1, time.Time{}
	c.raw = newRawIO(nc)
	var rd io.Reader = nc
	if c.raw != nil {
		rd = c.raw
	}
	if c.br == nil {
		c.br = bufio.NewReaderSize(rd, readBufSize)
	} else {
		c.br.Reset(rd)
	}
	return nc, nil
}

// result is what get returns about one response.
type result struct {
	status int
	n      int64     // body bytes
	held   time.Time // when the last body byte arrived
	sent   time.Time // when the request was written
}

// get sends GET path (path and query, starting with /) and reads the answer.
// With body non-nil the body is stored there (reusing its storage),
// otherwise it is read and dropped. A connection that had served requests
// and fails before answering is redialled once, as browsers do.
func (c *conn) get(deadline time.Time, path []byte, body *[]byte) (result, error) {
	for attempt := 0; ; attempt++ {
		res, answered, err := c.try(deadline, path, body)
		if err == nil {
			return res, nil
		}
		c.drop()
		if answered || attempt > 0 || !c.reused || errors.Is(err, errClosed) || time.Now().After(deadline) {
			return res, err
		}
	}
}

func (c *conn) try(deadline time.Time, path []byte, body *[]byte) (res result, answered bool, err error) {
	if c.lp != nil {
		return c.tryLoop(deadline, path, body)
	}
	nc, err := c.current()
	if err != nil {
		return res, false, err
	}
	if nc == nil {
		if nc, err = c.dial(deadline); err != nil {
			return res, false, err
		}
	} else {
		c.reused = true
	}
	c.buildRequest(path)
	if err := c.setDeadline(nc, deadline); err != nil {
		return res, false, err
	}
	res.sent = time.Now()
	if c.raw != nil && c.br.Buffered() == 0 {
		c.raw.send(c.req, deadline) // written by the response's first read
	} else if _, err := nc.Write(c.req); err != nil {
		return res, false, err
	}
	return c.finish(res, body)
}

// tryLoop is try for the running task of c's loop: no poller, no runtime
// timers.
func (c *conn) tryLoop(deadline time.Time, path []byte, body *[]byte) (res result, answered bool, err error) {
	if c.closed {
		return res, false, errClosed
	}
	due := deadline.UnixNano()
	if c.ls == nil {
		ls, err := dial(c.lp, c.t.dialAP, c.local, due)
		if err != nil {
			return res, false, err
		}
		c.ls, c.reused, c.dials = ls, false, c.dials+1
		if c.br == nil {
			c.br = bufio.NewReaderSize(ls, readBufSize)
		} else {
			c.br.Reset(ls)
		}
	} else {
		c.reused = true
	}
	c.buildRequest(path)
	res.sent = time.Now()
	c.ls.send(c.req, due) // written by the response's first read
	if c.br.Buffered() > 0 {
		// Input left over from the last answer: send now, read it first.
		req := c.ls.req
		c.ls.req = nil
		if _, err := c.ls.Write(req); err != nil {
			return res, false, err
		}
	}
	return c.finish(res, body)
}

func (c *conn) buildRequest(path []byte) {
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.t.host...)
	c.req = append(c.req, "\r\nUser-Agent: amphi-loadtest\r\nAccept: */*\r\n\r\n"...)
}

// finish reads the answer to the request just sent.
func (c *conn) finish(res result, body *[]byte) (result, bool, error) {
	keep, err := c.readResponse(&res, body)
	if err != nil {
		return res, res.status != 0, err
	}
	res.held = time.Now()
	if !keep {
		c.drop()
	}
	return res, true, nil
}

// setDeadline bounds the request. A raw connection writes its request
// inside the read (see rawIO) and needs only a read deadline: one runtime
// timer to move per request instead of two.
//
// Moving a deadline costs a runtime timer update (3 % of the generator's
// CPU at one per request), so the connection's deadline only moves when
// it would fire before deadline or more than deadlineSlack after it: a
// request may run up to deadlineSlack past its limit, against a limit of
// several seconds.
func (c *conn) setDeadline(nc net.Conn, deadline time.Time) error {
	if !c.deadline.IsZero() && !c.deadline.Before(deadline) && c.deadline.Sub(deadline) <= deadlineSlack {
		return nil
	}
	c.deadline = deadline.Add(deadlineSlack)
	if c.raw == nil {
		return nc.SetDeadline(c.deadline)
	}
	return nc.SetReadDeadline(c.deadline)
}

// readResponse reads one response; keep reports whether the connection may
// carry another request.
func (c *conn) readResponse(res *result, body *[]byte) (keep bool, err error) {
	br := c.br
	var length int64
	var chunked bool
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return false, headErr(err)
		}
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return false, errBadResponse
		}
		st, ok := parseInt(line[9:12])
		if !ok || st < 100 {
			return false, errBadResponse
		}
		keep = line[7] == '1'
		length, chunked = -1, false
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return false, headErr(err)
			}
			line = trimCRLF(line)
			if len(line) == 0 {
				break
			}
			colon := bytes.IndexByte(line, ':')
			if colon < 0 {
				return false, errBadResponse
			}
			name := line[:colon]
			// Only three headers matter: compare names by length first.
			switch len(name) {
			case len("Content-Length"), len("Transfer-Encoding"), len("Connection"):
			default:
				continue
			}
			val := bytes.TrimSpace(line[colon+1:])
			switch {
			case bytes.EqualFold(name, []byte("Content-Length")):
				var ok bool
				if length, ok = parseInt(val); !ok {
					return false, errBadResponse
				}
			case bytes.EqualFold(name, []byte("Transfer-Encoding")):
				chunked = len(val) >= 7 && bytes.EqualFold(val[len(val)-7:], []byte("chunked"))
			case bytes.EqualFold(name, []byte("Connection")):
				if bytes.EqualFold(val, []byte("close")) {
					keep = false
				} else if bytes.EqualFold(val, []byte("keep-alive")) {
					keep = true
				}
			}
		}
		if st >= 200 || st == 101 {
			res.status = int(st)
			break
		}
		// 1xx informational: the real answer follows.
	}
	if body != nil {
		*body = (*body)[:0]
	}
	switch {
	case res.status == 204 || res.status == 304:
		return keep, nil
	case chunked:
		err = c.readChunked(res, body)
	case length >= 0:
		err = c.readN(res, length, body)
	default: // until the server closes
		err = c.readN(res, -1, body)
		keep = false
	}
	return keep, err
}

// trimCRLF drops a line's trailing CRs and LFs.
func trimCRLF(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func headErr(err error) error {
	if errors.Is(err, bufio.ErrBufferFull) {
		return errBadResponse
	}
	return err
}

// readN reads n body bytes (n < 0: until EOF) into body or nowhere.
func (c *conn) readN(res *result, n int64, body *[]byte) error {
	br := c.br
	if body == nil {
		if n >= 0 {
			m, err := br.Discard(int(n))
			res.n += int64(m)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		for {
			m, err := br.Discard(readBufSize)
			res.n += int64(m)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	b := *body
	if n > maxBody {
		return errTooLarge
	}
	if n >= 0 {
		b = growTo(b, int(n))
		m, err := io.ReadFull(br, b[len(b)-int(n):])
		res.n += int64(m)
		*body = b
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	for {
		if len(b) == cap(b) {
			if len(b) >= maxBody {
				return errTooLarge
			}
			b = append(b, 0)[:len(b)]
		}
		m, err := br.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		res.n += int64(m)
		*body = b
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// growTo extends b by n bytes, reusing its storage when it can.
func growTo(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), max(len(b)+n, 2*cap(b), 4096))
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

func (c *conn) readChunked(res *result, body *[]byte) error {
	br := c.br
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return headErr(err)
		}
		line = trimCRLF(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, ok := parseHex(bytes.TrimSpace(line))
		if !ok {
			return errBadResponse
		}
		if size == 0 {
			// Trailers up to the empty line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return headErr(err)
				}
				if len(trimCRLF(line)) == 0 {
					return nil
				}
			}
		}
		if body != nil && int64(len(*body))+size > maxBody {
			return errTooLarge
		}
		if err := c.readN(res, size, body); err != nil {
			return err
		}
		if line, err := br.ReadSlice('\n'); err != nil {
			return headErr(err)
		} else if len(trimCRLF(line)) != 0 {
			return errBadResponse
		}
	}
}

func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			n = n<<4 | int64(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

// resolver turns playlist URIs into request paths on the target.
type resolver struct {
	t    *target
	base *url.URL // the media playlist's URL
	dir  string   // its path up to and including the last '/'
}

func newResolver(t *target, base *url.URL) *resolver {
	p := base.EscapedPath()
	if p == "" {
		p = "/"
	}
	return &resolver{t: t, base: base, dir: p[:strings.LastIndexByte(p, '/')+1]}
}

// errOtherHost is a playlist URI on another host than the target.
var errOtherHost = errors.New("URI points to another host")

// appendPath appends the request path of uri (relative to the media
// playlist) to dst. Plain relative names, the common case, do not allocate.
func (r *resolver) appendPath(dst, uri []byte) ([]byte, error) {
	if len(uri) > 0 && uri[0] == '/' && (len(uri) < 2 || uri[1] != '/') && !bytes.Contains(uri, []byte("/.")) {
		return append(dst, uri...), nil
	}
	if bytes.IndexAny(uri, ":/#") < 0 && !bytes.HasPrefix(uri, []byte(".")) {
		dst = append(dst, r.dir...)
		return append(dst, uri...), nil
	}
	ref, err := url.Parse(string(uri))
	if err != nil {
		return dst, &malformedError{"bad URI"}
	}
	u := r.base.ResolveReference(ref)
	if u.Scheme != r.t.scheme || u.Host != r.t.host {
		return dst, errOtherHost
	}
	return append(dst, u.RequestURI()...), nil
}

// playlistPath is the media playlist's path and query.
func (r *resolver) playlistPath() string { return r.base.RequestURI() }
