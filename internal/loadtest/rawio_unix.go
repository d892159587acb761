//go:build unix

package loadtest

import (
	"net"
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
	nc  *net.TCPConn
	sc  *rawsock.Conn
	req []byte    // not yet written; the next Read writes it first
	dl  time.Time // req's deadline
}

// newRawIO returns nil when nc cannot be read raw (TLS, or not TCP).
func newRawIO(nc net.Conn) *rawIO {
	sc := rawsock.New(nc)
	if sc == nil {
		return nil
	}
	return &rawIO{nc: nc.(*net.TCPConn), sc: sc}
}

// send queues req to be written by the next Read. The caller must read the
// answer next (and must not have buffered bytes to read first), with a read
// deadline set; deadline bounds a write that has to wait.
func (r *rawIO) send(req []byte, deadline time.Time) { r.req, r.dl = req, deadline }

func (r *rawIO) Read(p []byte) (int, error) {
	if len(r.req) == 0 {
		return r.sc.Read(p)
	}
	req := r.req
	r.req = nil
	// The answer cannot come before the request has left: no recv first.
	unsent, n, err := r.sc.SendRecv(req, p, true)
	if err != nil || len(unsent) == 0 {
		return n, err
	}
	// Rare: the send buffer is full. Write the rest, waiting, then read.
	if err := r.nc.SetWriteDeadline(r.dl); err != nil {
		return 0, err
	}
	if _, err := r.sc.Write(unsent); err != nil {
		return 0, err
	}
	return r.sc.Read(p)
}

// rawAvailable reports whether plain TCP connections take the raw path.
const rawAvailable = true
