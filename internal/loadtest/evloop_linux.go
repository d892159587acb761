//go:build linux

package loadtest

import (
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/amphi-live/amphi/internal/evloop"
)

// loopSock is a plain TCP connection of a loop task: read raw, with the
// request written inside the read that awaits its answer, as rawIO does.
type loopSock struct {
	lp  *evloop.Loop
	fd  int
	req []byte // not yet written; the next Read writes it first
	due int64  // the current request's deadline, unix ns
}

// dial connects to addr from local (when valid) before due, for the
// running task.
func dial(lp *evloop.Loop, addr netip.AddrPort, local netip.Addr, due int64) (*loopSock, error) {
	family := unix.AF_INET
	if !addr.Addr().Is4() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	s := &loopSock{lp: lp, fd: fd}
	fail := func(what string, err error) (*loopSock, error) {
		s.close()
		return nil, os.NewSyscallError(what, err)
	}
	// As Go's dialer does: requests leave at once.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fail("setsockopt", err)
	}
	if local.IsValid() {
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(local, 0))); err != nil {
			return fail("bind", err)
		}
	}
	if err := lp.Register(fd); err != nil {
		s.close()
		return nil, err
	}
	err = unix.Connect(fd, sockaddr(addr))
	for err == unix.EINPROGRESS || err == unix.EALREADY || err == unix.EINTR {
		if werr := waitIO(lp, fd, true, due); werr != nil {
			s.close()
			return nil, werr
		}
		// As Go's netFD.connect: the outcome is in SO_ERROR; a spurious
		// wake-up leaves it 0 with the connection not yet up.
		var soerr int
		if soerr, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil {
			return fail("getsockopt", err)
		}
		err = syscall.Errno(soerr)
		if err == syscall.Errno(0) {
			if _, perr := unix.Getpeername(fd); perr != nil {
				err = unix.EINPROGRESS
			}
		}
	}
	if err != nil && err != syscall.Errno(0) && err != unix.EISCONN {
		return fail("connect", err)
	}
	return s, nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// waitIO waits for fd as the loop's running task, with the loop's closing
// reported as the listener's.
func waitIO(lp *evloop.Loop, fd int, write bool, due int64) error {
	return loopErr(lp.Current().WaitIO(fd, write, due))
}

// loopErr reports the loop's closing as the listener's.
func loopErr(err error) error {
	if err == evloop.ErrClosed {
		return errClosed
	}
	return err
}

// close closes the socket; closing takes it out of the epoll set.
func (s *loopSock) close() {
	if s.fd < 0 {
		return
	}
	s.lp.Forget(s.fd)
	unix.Close(s.fd)
	s.fd = -1
}

// send queues req for the next Read, bounded by due.
func (s *loopSock) send(req []byte, due int64) { s.req, s.due = req, due }

func (s *loopSock) Read(p []byte) (int, error) {
	// The answer cannot come before the request has left: after sending,
	// wait before the first recv.
	if len(s.req) > 0 {
		req := s.req
		s.req = nil
		if _, err := s.Write(req); err != nil {
			return 0, err
		}
		if err := waitIO(s.lp, s.fd, false, s.due); err != nil {
			return 0, err
		}
	}
	n, err := s.lp.Current().Recv(s.fd, p, s.due)
	return n, loopErr(err)
}

// Write sends all of p, waiting while the socket is full.
func (s *loopSock) Write(p []byte) (int, error) {
	n, err := s.lp.Current().Send(s.fd, p, s.due)
	return n, loopErr(err)
}
