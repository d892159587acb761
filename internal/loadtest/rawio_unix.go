//go:build unix

package loadtest

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/amphi-live/amphi/internal/rawsock"
)

// rawIO reads a plain TCP connection through its syscall.RawConn and writes
// the pending request inside the first read, so that a request costs one
// write and (usually) one read system call.
//
// Go's own Read tries the read syscall before it waits for readiness, and
// just after a request is sent that try almost always fails with EAGAIN:
// an extra system call per request, and with page-table isolation they are
// the generator's largest cost. The try cannot simply be skipped: the
// poller forgets readiness that arrived before a read began. Writing the
// request inside the read makes skipping it safe, because the answer cannot
// arrive before its request has been written, which is after the read
// began.
type rawIO struct {
	nc   *net.TCPConn
	rc   syscall.RawConn
	fn   func(fd uintptr) bool // r.do, bound once: no allocation per read
	req  []byte                // not yet written; the next Read writes it first
	dl   time.Time             // req's deadline
	p    []byte                // the Read in progress
	n    int
	err  error
	full bool // the socket took only part of req: finish it with a blocking write
}

// newRawIO returns nil when nc cannot be read raw (TLS, or not TCP).
func newRawIO(nc net.Conn) *rawIO {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawIO{nc: tc, rc: rc}
	r.fn = r.do
	return r
}

// send queues req to be written by the next Read. The caller must read the
// answer next (and must not have buffered bytes to read first), with a read
// deadline set; deadline bounds a write that has to wait.
func (r *rawIO) send(req []byte, deadline time.Time) { r.req, r.dl = req, deadline }

func (r *rawIO) Read(p []byte) (int, error) {
	for {
		r.p, r.n, r.err = p, 0, nil
		err := r.rc.Read(r.fn)
		r.p = nil
		if err != nil {
			r.req = nil
			return 0, err
		}
		if r.full {
			// Rare: the send buffer is full. Write the rest the ordinary
			// way, then read.
			r.full = false
			rest := r.req
			r.req = nil
			if err := r.nc.SetWriteDeadline(r.dl); err != nil {
				return 0, err
			}
			if _, err := r.nc.Write(rest); err != nil {
				return 0, err
			}
			continue
		}
		return r.n, r.err
	}
}

// do is the RawConn callback: it reports whether the Read is done, false
// meaning "wait until the socket is readable and call again".
func (r *rawIO) do(fd uintptr) bool {
	for len(r.req) > 0 {
		n, err := rawsock.Send(int(fd), r.req)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			r.full = true
			return true
		case err != nil:
			r.req, r.err = nil, os.NewSyscallError("write", err)
			return true
		}
		r.req = r.req[n:]
		if len(r.req) > 0 {
			r.full = true
			return true
		}
		return false // sent: the answer comes later, wait for it
	}
	for {
		n, err := rawsock.Recv(int(fd), r.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			r.err = os.NewSyscallError("read", err)
		case n == 0 && len(r.p) > 0:
			r.err = io.EOF
		}
		r.n = max(n, 0)
		return true
	}
}

// rawAvailable reports whether plain TCP connections take the raw path.
const rawAvailable = true
