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
	rc      syscall.RawConn
	readFn  func(fd uintptr) bool // bound once: no allocation per call
	writeFn func(fd uintptr) bool
	p       []byte
	n       int
	err     error
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
	c.readFn, c.writeFn = c.doRead, c.doWrite
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
	for {
		n, err := Recv(int(fd), c.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false // wait for readability, then call again
		case err != nil:
			c.err = os.NewSyscallError("read", err)
		case n == 0 && len(c.p) > 0:
			c.err = io.EOF
		}
		c.n = max(n, 0)
		return true
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
	for len(c.p) > 0 {
		n, err := Send(int(fd), c.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false // wait for writability
		case err != nil:
			c.err = os.NewSyscallError("write", err)
			return true
		}
		c.n += n
		c.p = c.p[n:]
	}
	return true
}
