package h1

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/amphi-live/amphi/internal/evloop"
	"github.com/amphi-live/amphi/internal/rawsock"
)

const (
	readBufSize = 4 << 10
	// maxDiscard is how much of an unread request body is drained to keep
	// the connection; beyond it the connection closes instead.
	maxDiscard = 256 << 10
	// slack is how far early a deadline may be renewed: moving a deadline
	// costs a runtime timer update, so one is only moved when it would fire
	// within slack of the wanted time.
	slack = time.Second
	// lingerTime and lingerBytes bound lingerClose.
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 8 << 20
	// fastGap: a client whose request followed our last answer within
	// fastGap is expected to do so again, and its next wait skips the recv
	// that would find nothing (see readIdle). An LL-HLS player asks for the
	// part right after the playlist and the next playlist right after the
	// part, but a loaded machine can take a good part of a part to do so.
	fastGap = 200 * time.Millisecond
	// safetyWait bounds such a wait: input that arrived before the wait
	// began (a pipelining client) raises no readiness, and is found by a
	// recv once the deadline passes.
	safetyWait = time.Second
	// heldAck and maxHeldAck: an answer that took longer than heldAck
	// after its request arrived may have been preceded by the kernel's own
	// delayed ACK, which ends TCP's request-response mode; readIdle turns
	// it back on (rawsock.Conn.DelayAcks) so that the next request's
	// acknowledgement rides on its answer instead of a segment of its own
	// sent when the request is read. Linux's shortest delayed-ACK timeout
	// is 40 ms; the margin covers the time between the request's arrival
	// and its read.
	//
	// Not after holds longer than maxHeldAck, TCP's minimum
	// retransmission timeout: a request that comes after so long a silence
	// puts Linux into quick-ACK mode, which acknowledges it on arrival,
	// in the receive path, and DelayAcks would only put that off behind
	// the server's queue. Measured with 1-second parts at 10,000
	// listeners, it cost the edge 4-29 % more CPU per part and raised the
	// median part latency by 17-50 ms (bench/README.md).
	heldAck    = 30 * time.Millisecond
	maxHeldAck = 200 * time.Millisecond
)

// conn is one client connection and everything reused across its requests.
type conn struct {
	srv    *Server
	nc     net.Conn
	idle   atomic.Bool // waiting between requests; Shutdown may close it
	linger bool        // close with lingerClose: the client may still be sending

	buf  []byte // read buffer: buf[r:w] is unread input
	r, w int

	readDeadline  time.Time
	writeDeadline time.Time

	remote string
	sock   rawIO        // nc's socket, read and written directly; nil if not TCP
	task   *evloop.Task // the loop task serving the connection; nil: a goroutine

	tmpl http.Request // a blank Request, its context set
	req  http.Request
	url  url.URL
	hdr  http.Header
	vals []string // backing store for single header values
	body body
	resp response

	// pending is a complete answer not sent yet: it leaves inside the next
	// read (readIdle), or in flushPending before anything else is written
	// or the connection closes.
	pending   *outBuf
	sending   *outBuf   // the pending answer, while readIdle sends it
	fast      bool      // the last request came within fastGap of its previous answer
	pipelines bool      // the client has sent a request before its previous answer
	headAt    time.Time // when the current request's first bytes were read
}

// rawIO is what conn needs of a socket it reads and writes directly:
// rawsock.Conn for a goroutine's connection, loopConn on an event loop.
type rawIO interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	SendRecv(out, p []byte, skipRecv bool) (unsent []byte, n int, err error)
	TryRead(p []byte) (int, error)
	DelayAcks()
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc, buf: make([]byte, readBufSize), hdr: make(http.Header, 8)}
	c.remote = nc.RemoteAddr().String()
	switch nc := nc.(type) {
	case *loopConn:
		nc.afterSend = c.sentPending
		c.sock = nc
	default:
		if rs := rawsock.New(nc); rs != nil {
			rs.AfterSend = c.sentPending
			c.sock = rs
		}
	}
	c.tmpl = *new(http.Request).WithContext(context.Background())
	c.resp.hdr = make(http.Header, 8)
	c.resp.c = c
	c.body.c = c
	return c
}

// Errors that end a connection: errHeadTooLarge with an answer,
// errClientGone without.
var (
	errHeadTooLarge = errors.New("request header fields too large")
	errClientGone   = errors.New("connection closed by client")
)

func (c *conn) serve() {
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.srv.Logger.Error("h1: panic serving connection", "remote", c.remote,
				"panic", v, "stack", string(debug.Stack()))
		}
		c.flushPending()
		if c.linger {
			c.lingerClose()
		}
		c.nc.Close()
		c.srv.untrack(c)
	}()
	for {
		head, err := c.readHead()
		if err != nil {
			c.failHead(err)
			return
		}
		if !c.serveOne(head) {
			return
		}
	}
}

// readHead waits for the next request head and returns it, unparsed,
// including its final blank line.
func (c *conn) readHead() ([]byte, error) {
	start := time.Now()
	if c.r == c.w {
		// Idle between requests.
		c.r, c.w = 0, 0
		if len(c.buf) > readBufSize {
			c.buf = make([]byte, readBufSize) // give back a buffer grown for a big head
		}
		n, _ := c.readIdle(start)
		c.idle.Store(false)
		if n == 0 {
			return nil, errClientGone
		}
		c.w += n
		now := time.Now()
		c.fast = now.Sub(start) < fastGap
		start = now
	} else {
		// The next request is already here: the client pipelines. The
		// answer before it goes first.
		c.pipelines = true
		if !c.flushPending() {
			return nil, errClientGone
		}
	}
	scanned := 0 // how much of the unread input is known to hold no head end
	headerDeadline := false
	for {
		if end := headEnd(c.buf[c.r:c.w], scanned); end > 0 {
			if end > c.srv.MaxHeaderBytes {
				return nil, errHeadTooLarge
			}
			head := c.buf[c.r : c.r+end]
			c.r += end
			c.headAt = start
			return head, nil
		}
		// Relative to c.r, so it survives grow moving the input.
		scanned = max(0, c.w-c.r-3)
		if c.w-c.r >= c.srv.MaxHeaderBytes {
			return nil, errHeadTooLarge
		}
		if c.w == len(c.buf) {
			c.grow()
		}
		if !headerDeadline {
			// A head that did not arrive in one read has ReadHeaderTimeout
			// from its first byte.
			c.nc.SetReadDeadline(start.Add(c.srv.ReadHeaderTimeout))
			c.readDeadline = time.Time{} // forces the idle deadline back next time
			headerDeadline = true
		}
		n, err := c.read(c.buf[c.w:min(len(c.buf), c.r+c.srv.MaxHeaderBytes)])
		c.w += n
		if n == 0 && err != nil {
			// Closed or timed out mid-head: nobody to answer.
			return nil, errClientGone
		}
	}
}

// readIdle sends the pending answer, if any, and waits for the next
// request's first bytes, which it reads into buf.
//
// The answer leaves inside the read (rawsock.SendRecv), after the poller is
// armed, so the readiness its reply raises cannot be lost. For a client
// that waits for each answer before it asks again, and asked quickly last
// time, there is then nothing to recv(2) before the wait: skipping that
// recv saves a system call per request, a tenth of the edge's kernel work.
// Input that came before the wait (pipelining) raises no readiness, so
// that wait is bounded by safetyWait, after which a recv finds it and the
// connection stops skipping.
func (c *conn) readIdle(now time.Time) (int, error) {
	if c.pending == nil { // sendLast holds answers only over a raw socket
		if !c.sentPending() {
			return 0, errClientGone
		}
		c.setReadDeadline(now, c.srv.IdleTimeout)
		return c.read(c.buf)
	}
	c.sending, c.pending = c.pending, nil
	if held := now.Sub(c.headAt); held > heldAck && held <= maxHeldAck {
		c.sock.DelayAcks()
	}
	skip := c.fast && !c.pipelines
	if skip {
		if c.readDeadline.Before(now.Add(safetyWait/2)) || c.readDeadline.After(now.Add(safetyWait)) {
			c.readDeadline = now.Add(safetyWait)
			c.nc.SetReadDeadline(c.readDeadline)
		}
	} else {
		c.setReadDeadline(now, c.srv.IdleTimeout)
	}
	unsent, n, err := c.sock.SendRecv(c.sending.b, c.buf, skip)
	if c.sending != nil {
		// Not all sent, so sentPending did not run: the socket was full
		// (write the rest, waiting, then read) or the connection failed.
		var werr error
		if len(unsent) > 0 && err == nil {
			c.setWriteDeadline(time.Now().Add(c.srv.WriteTimeout))
			_, werr = c.write(unsent)
		}
		putBuf(c.sending)
		c.sending = nil
		if err != nil || werr != nil || !c.sentPending() {
			return 0, errClientGone
		}
		c.setReadDeadline(time.Now(), c.srv.IdleTimeout)
		return c.read(c.buf)
	}
	if skip && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		// A slow client, or input that was already here.
		c.fast = false
		if n, err = c.sock.TryRead(c.buf); n > 0 || err != nil {
			c.pipelines = n > 0
			return n, err
		}
		c.setReadDeadline(time.Now(), c.srv.IdleTimeout)
		return c.read(c.buf)
	}
	return n, err
}

// sentPending marks the connection idle once its last answer is out, and
// reports whether to wait for another request: not once Shutdown began.
func (c *conn) sentPending() bool {
	if c.sending != nil {
		putBuf(c.sending) // before the wait: an idle connection holds no buffer
		c.sending = nil
	}
	c.idle.Store(true)
	return !c.srv.closing.Load()
}

// flushPending sends the pending answer now, and reports whether that
// worked (or there was none).
func (c *conn) flushPending() bool {
	o := c.pending
	if o == nil {
		return true
	}
	c.pending = nil
	c.setWriteDeadline(time.Now().Add(c.srv.WriteTimeout))
	_, err := c.write(o.b)
	putBuf(o)
	return err == nil
}

// grow makes room at the end of buf, moving unread input to the front.
func (c *conn) grow() {
	n := c.w - c.r
	nb := c.buf
	if n >= len(c.buf)/2 {
		nb = make([]byte, min(2*len(c.buf), c.srv.MaxHeaderBytes+readBufSize))
	}
	copy(nb, c.buf[c.r:c.w])
	c.buf, c.r, c.w = nb, 0, n
}

// headEnd returns the length of the head in b (through its blank line), or
// 0 when b holds no complete head. from is where to resume scanning.
func headEnd(b []byte, from int) int {
	from = max(from, 0)
	for {
		i := bytes.IndexByte(b[from:], '\n')
		if i < 0 {
			return 0
		}
		i += from
		// A blank line: "\n\n" or "\n\r\n".
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
		from = i + 1
	}
}

// setReadDeadline makes sure the read deadline is at least d from now.
func (c *conn) setReadDeadline(now time.Time, d time.Duration) {
	if want := now.Add(d); moveDeadline(&c.readDeadline, want) {
		c.nc.SetReadDeadline(c.readDeadline)
	}
}

// setWriteDeadline makes sure the write deadline is at least want; the
// zero time clears it.
func (c *conn) setWriteDeadline(want time.Time) error {
	if want.IsZero() {
		c.writeDeadline = want
		return c.nc.SetWriteDeadline(want)
	}
	if moveDeadline(&c.writeDeadline, want) {
		return c.nc.SetWriteDeadline(c.writeDeadline)
	}
	return nil
}

// moveDeadline reports whether a deadline at *cur must move to meet want,
// and moves *cur to want plus slack if so: a deadline is only moved when it
// would otherwise fire early or more than slack late.
func moveDeadline(cur *time.Time, want time.Time) bool {
	if !cur.IsZero() && !cur.Before(want) && cur.Sub(want) <= slack {
		return false
	}
	*cur = want.Add(slack)
	return true
}

// failHead answers a request head that could not be read, when there is
// one to answer, and ends the connection.
func (c *conn) failHead(err error) {
	var bad *requestError
	switch {
	case errors.Is(err, errHeadTooLarge):
		c.writeError(http.StatusRequestHeaderFieldsTooLarge, "request header fields too large")
		c.linger = true
	case errors.As(err, &bad):
		c.writeError(bad.status, bad.msg)
		c.linger = true
	}
}

// writeError writes a minimal error response that closes the connection.
func (c *conn) writeError(status int, msg string) {
	var b []byte
	b = append(b, statusLine(status)...)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	body := itoa(status) + " " + http.StatusText(status) + ": " + msg + "\n"
	b = append(b, itoa(len(body))...)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	c.setWriteDeadline(time.Now().Add(c.srv.WriteTimeout))
	c.write(b)
}

// serveOne parses head, runs the handler and finishes the response. It
// reports whether the connection stays open for another request.
func (c *conn) serveOne(head []byte) bool {
	keep, err := c.parse(head)
	if err != nil {
		c.failHead(err)
		return false
	}
	if !c.body.done {
		// A body is read under the idle deadline, not readIdle's short one.
		c.setReadDeadline(time.Now(), c.srv.IdleTimeout)
	}
	w := &c.resp
	w.reset(&c.req, keep)
	if c.task != nil && !c.srv.onLoop(&c.req) {
		c.task.Detach()
	}
	c.srv.Handler.ServeHTTP(w, &c.req)
	if w.finish() && !c.srv.closing.Load() && c.body.drain() {
		if c.task != nil {
			c.task.Attach() // or stay detached if the loop is gone
		}
		return true
	}
	// Unread body bytes at close would make the kernel reset the
	// connection, which can destroy the answer before the client reads it
	// (a refused publisher would see "connection reset"): also when the
	// handler itself asked to close, as the origin's ingest does.
	c.linger = !w.failed && !c.body.done
	return false
}

// abort closes the connection from another goroutine (Close, Shutdown's
// sweep of idle connections); its own goroutine or task sees its reads and
// writes fail and ends it.
func (c *conn) abort() {
	if lc, ok := c.nc.(*loopConn); ok {
		lc.abort()
		return
	}
	c.nc.Close()
}

// lingerClose half-closes the connection and reads what the client still
// sends for up to lingerTime, so that our answer arrives before the reset
// that closing a socket with unread input causes (net/http does the same).
func (c *conn) lingerClose() {
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	// Bounded by bytes, not reads: a refused upload still streaming (an
	// ingest past the origin's probe limit) sends megabytes in that time,
	// and 64 reads of a 4 KiB buffer left most of them unread.
	for n := 0; n < lingerBytes; {
		m, err := c.nc.Read(c.buf[:cap(c.buf)])
		if err != nil {
			return
		}
		n += m
	}
}

// Read reads request bytes: what is buffered first, then the connection.
// The body reader uses it.
func (c *conn) Read(p []byte) (int, error) {
	if c.r < c.w {
		n := copy(p, c.buf[c.r:c.w])
		c.r += n
		return n, nil
	}
	if len(p) >= len(c.buf) {
		return c.read(p)
	}
	c.r, c.w = 0, 0
	n, err := c.read(c.buf)
	c.w = n
	m := copy(p, c.buf[:n])
	c.r = m
	return m, err
}

// readLine returns the next line of input, '\n' included, for chunked
// bodies. The line is only valid until the next read.
func (c *conn) readLine() ([]byte, error) {
	scanned := c.r
	for {
		if i := bytes.IndexByte(c.buf[scanned:c.w], '\n'); i >= 0 {
			line := c.buf[c.r : scanned+i+1]
			c.r = scanned + i + 1
			return line, nil
		}
		if c.w-c.r >= readBufSize {
			return nil, errMalformedChunk
		}
		if c.w == len(c.buf) {
			c.grow()
		}
		scanned = c.w
		n, err := c.read(c.buf[c.w:])
		c.w += n
		if n == 0 && err != nil {
			return nil, err
		}
	}
}

// read and write go to the socket directly when there is one: one system
// call each, without the runtime's system-call bookkeeping (package
// rawsock).
func (c *conn) read(p []byte) (int, error) {
	if c.sock != nil {
		return c.sock.Read(p)
	}
	return c.nc.Read(p)
}

func (c *conn) write(p []byte) (int, error) {
	if c.sock != nil {
		return c.sock.Write(p)
	}
	return c.nc.Write(p)
}
