//go:build unix

package rawsock

import (
	"io"
	"net"
	"os"
	"syscall"
)

// Conn reads and writes a TCP connection with Recv and Send, waiting for
// readiness through the poller. Like net.Conn, a Read tries recv(2) before
// waiting, so no readiness is ever missed. A Conn is for one goroutine.
type Conn struct {
	rc         syscall.RawConn
	readFn     func(fd uintptr) bool // bound once: no allocation per call
	writeFn    func(fd uintptr) bool
	sendRecvFn func(fd uintptr) bool
	p          []byte
	n          int
	err        error

	out      []byte // SendRecv: what is still to send
	skipRecv bool   // SendRecv: wait before the first recv
	delayAck bool   // SendRecv: turn delayed ACKs back on before sending
	tryFn    func(fd uintptr)

	// AfterSend, when set, is called by SendRecv once out has left and
	// before the read, on the calling goroutine; when it returns false,
	// SendRecv returns without reading (n == 0, err == nil).
	AfterSend func() bool
}

// New returns a Conn over nc, or nil when nc is not a plain TCP connection
// (callers then use nc itself).
func New(nc net.Conn) *Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &Conn{rc: rc}
	c.readFn, c.writeFn, c.sendRecvFn, c.tryFn = c.doRead, c.doWrite, c.doSendRecv, c.tryRead
	return c
}

// Read reads into p, waiting (within the read deadline) until data comes.
func (c *Conn) Read(p []byte) (int, error) {
	c.p, c.n, c.err = p, 0, nil
	err := c.rc.Read(c.readFn)
	c.p = nil
	if err != nil {
		return 0, err
	}
	return c.n, c.err
}

func (c *Conn) doRead(fd uintptr) bool {
	n, wait, err := RecvSome(int(fd), c.p)
	c.n, c.err = n, err
	return !wait // else wait for readability, then call again
}

// RecvSome reads into p from the non-blocking socket fd with one recv(2)
// (more on EINTR). wait reports that there was nothing to read (EAGAIN);
// a closed peer is io.EOF.
func RecvSome(fd int, p []byte) (n int, wait bool, err error) {
	for {
		n, err := Recv(fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, true, nil
		case err != nil:
			return 0, false, os.NewSyscallError("read", err)
		case n == 0 && len(p) > 0:
			return 0, false, io.EOF
		}
		return n, false, nil
	}
}

// SendRecv sends out, then reads into p like Read. The read is armed with
// the poller before out leaves, so readiness caused by the peer's answer to
// out cannot be lost; with skipRecv set, no recv(2) is tried before the
// first wait: a peer that waits for out before it sends again (an HTTP
// client that does not pipeline) cannot have sent anything yet, and that
// recv would only have found nothing. Input that was already waiting when
// SendRecv began raises no new readiness, so with skipRecv set the caller
// must bound the wait with a read deadline and recover with TryRead.
//
// When the socket cannot take all of out without waiting, SendRecv returns
// what is left in unsent, having read nothing; the caller writes it and
// reads the usual way.
func (c *Conn) SendRecv(out, p []byte, skipRecv bool) (unsent []byte, n int, err error) {
	c.out, c.p, c.n, c.err, c.skipRecv = out, p, 0, nil, skipRecv
	err = c.rc.Read(c.sendRecvFn)
	unsent, c.out, c.p = c.out, nil, nil
	if err != nil {
		return unsent, 0, err
	}
	return unsent, c.n, c.err
}

// DelayAcks makes the next SendRecv turn the socket's delayed
// acknowledgements back on (Linux: TCP_QUICKACK 0) before it sends; elsewhere
// it does nothing.
//
// Linux acknowledges a request by itself when it has not answered within
// the delayed-ACK timeout (40 ms or more), and then leaves its
// request-response ("ping-pong") mode: the next request is acknowledged
// the moment it is read, by a segment of its own, although the answer that
// follows at once would have carried the acknowledgement. On loopback
// that segment costs the sending side its transmission and the peer's
// reception. A server that answers a request it held (an LL-HLS blocking
// playlist request waits up to a part) and expects the next request to be
// answered quickly calls DelayAcks, and the acknowledgement rides on that
// answer again.
func (c *Conn) DelayAcks() { c.delayAck = true }

func (c *Conn) doSendRecv(fd uintptr) bool {
	if c.delayAck {
		c.delayAck = false
		DelayAcks(int(fd))
	}
	if len(c.out) > 0 {
		if c.out, c.err = SendSome(int(fd), c.out); c.err != nil || len(c.out) > 0 {
			return true // failed, or full: the caller writes the rest, waiting
		}
		if c.AfterSend != nil && !c.AfterSend() {
			return true
		}
		if c.skipRecv {
			return false
		}
	}
	return c.doRead(fd)
}

// TryRead makes one recv(2) without waiting: n == 0 with err == nil means
// nothing was there.
func (c *Conn) TryRead(p []byte) (n int, err error) {
	c.p, c.n, c.err = p, 0, nil
	cerr := c.rc.Control(c.tryFn)
	c.p = nil
	if cerr != nil {
		return 0, cerr
	}
	return c.n, c.err
}

func (c *Conn) tryRead(fd uintptr) {
	if !c.doRead(fd) {
		c.n, c.err = 0, nil // EAGAIN: nothing there
	}
}

// Write writes all of p, waiting (within the write deadline) while the
// socket's send buffer is full.
func (c *Conn) Write(p []byte) (int, error) {
	c.p, c.n, c.err = p, 0, nil
	err := c.rc.Write(c.writeFn)
	c.p = nil
	if err == nil {
		err = c.err
	}
	return c.n, err
}

func (c *Conn) doWrite(fd uintptr) bool {
	rest, err := SendSome(int(fd), c.p)
	c.n += len(c.p) - len(rest)
	c.p, c.err = rest, err
	return err != nil || len(rest) == 0 // else wait for writability
}

// SendSome sends b on the non-blocking socket fd until all of it is sent,
// the socket is full (EAGAIN) or sending fails, and returns what is left.
func SendSome(fd int, b []byte) ([]byte, error) {
	for len(b) > 0 {
		n, err := Send(fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return b, nil
		case err != nil:
			return b, os.NewSyscallError("write", err)
		}
		b = b[n:]
	}
	return b, nil
}
