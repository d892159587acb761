//go:build linux

package h1

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/amphi-live/amphi/internal/evloop"
	"github.com/amphi-live/amphi/internal/rawsock"
)

// loopsAvailable reports whether connections can be served on event loops.
const loopsAvailable = true

// startLoops starts the server's event loops, one per GOMAXPROCS. They end
// when s.loopStop is called (Close, or the end of Shutdown).
func (s *Server) startLoops(n int) error {
	ctx, cancel := context.WithCancel(context.Background())
	for range n {
		lp, err := evloop.New(ctx)
		if err != nil {
			cancel()
			return err
		}
		s.loops = append(s.loops, lp)
		go lp.Run()
	}
	s.loopStop = cancel
	return nil
}

// serveLoops is Serve for event loops: it accepts raw sockets on the
// listener whose RawConn is rc, sockets which never enter Go's poller, and
// hands each to a loop, round robin, as a task running the connection.
//
// A listener's own RawConn cannot wait (only Control works on it), so the
// accepting is done on a duplicate of its socket opened as an os.File,
// which can. The duplicate is closed when Shutdown or Close begins: closing
// the listener alone, which net/http's Serve takes as a stop, does not end
// this one.
func (s *Server) serveLoops(rc syscall.RawConn) error {
	var dup int
	var derr error
	if err := rc.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return err
	}
	if derr != nil {
		return os.NewSyscallError("fcntl", derr)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(dup), "h1-listener")
	defer f.Close()
	stop := context.AfterFunc(s.quit, func() { f.Close() })
	defer stop()
	frc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var (
		nfd  int
		sa   unix.Sockaddr
		aerr error
	)
	acceptFn := func(fd uintptr) bool {
		nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return aerr != unix.EAGAIN
	}
	var backoff time.Duration
	for i := 0; ; i++ {
		if !s.acquire() {
			return ErrServerClosed
		}
		err := frc.Read(acceptFn)
		if err == nil && aerr != nil {
			err = os.NewSyscallError("accept4", aerr)
		}
		if err != nil {
			s.release()
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, unix.ECONNABORTED) || errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
				errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM) {
				s.pause(err, &backoff)
				continue
			}
			return err
		}
		backoff = 0
		lc, err := newLoopConn(nfd, sa)
		if err != nil {
			unix.Close(nfd)
			s.release()
			s.Logger.Warn("setting up a connection failed", "err", err)
			continue
		}
		c := newConn(s, lc)
		if !s.track(c) {
			lc.Close()
			s.release()
			return ErrServerClosed
		}
		lp := s.loops[i%len(s.loops)]
		if !lp.Add(func(t *evloop.Task) { c.serveOn(t, lc) }) {
			s.untrack(c)
			lc.Close()
		}
	}
}

// serveOn serves the connection as task t of the loop that has lc.
func (c *conn) serveOn(t *evloop.Task, lc *loopConn) {
	lc.t = t
	if err := t.Loop().Register(lc.fd); err != nil {
		c.srv.Logger.Warn("registering a connection failed", "err", err)
		lc.Close()
		c.srv.untrack(c)
		return
	}
	c.task = t
	c.tmpl = *c.tmpl.WithContext(evloop.NewContext(context.Background(), t))
	c.serve()
}

// loopConn is a connection served on an event loop: a non-blocking socket
// in the loop's epoll set, read and written with raw system calls by the
// connection's task, which yields to the loop while it waits. It is the
// net.Conn of such a connection, and its rawIO too.
//
// Deadlines are kept here and enforced by the loop (see evloop.Task.WaitIO);
// setting one costs no timer. Close and CloseWrite may come from other
// goroutines (Server.Close): the socket is shut down then, which wakes the
// task, and closed only by the task itself.
type loopConn struct {
	t *evloop.Task

	mu sync.Mutex // fd against a close racing abort
	fd int

	remote     net.Addr
	rdue, wdue int64 // deadlines, unix ns; 0: none
	delayAck   bool
	afterSend  func() bool // see rawsock.Conn.AfterSend
}

func newLoopConn(fd int, sa unix.Sockaddr) (*loopConn, error) {
	// As Go sets up an accepted TCP connection: requests' answers leave at
	// once, and a vanished peer is found within minutes.
	for _, o := range [...]struct{ level, opt, v int }{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			return nil, os.NewSyscallError("setsockopt", err)
		}
	}
	return &loopConn{fd: fd, remote: sockaddrToTCP(sa)}, nil
}

func sockaddrToTCP(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		ta := &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				ta.Zone = ifi.Name
			}
		}
		return ta
	}
	return &net.TCPAddr{}
}

// wait waits for the socket within due, as the connection's task.
func (lc *loopConn) wait(write bool, due int64) error {
	return lc.t.WaitIO(lc.fd, write, due)
}

func (lc *loopConn) Read(p []byte) (int, error) { return lc.t.Recv(lc.fd, p, lc.rdue) }

func (lc *loopConn) Write(p []byte) (int, error) { return lc.t.Send(lc.fd, p, lc.wdue) }

// SendRecv is rawsock.Conn.SendRecv on the loop. Readiness is
// edge-triggered and registered for good, so an answer to out cannot be
// missed: nothing needs arming before out leaves.
func (lc *loopConn) SendRecv(out, p []byte, skipRecv bool) (unsent []byte, n int, err error) {
	if lc.delayAck {
		lc.delayAck = false
		rawsock.DelayAcks(lc.fd)
	}
	if len(out) > 0 {
		if out, err = rawsock.SendSome(lc.fd, out); err != nil || len(out) > 0 {
			return out, 0, err
		}
		if lc.afterSend != nil && !lc.afterSend() {
			return nil, 0, nil
		}
		if skipRecv {
			if err := lc.wait(false, lc.rdue); err != nil {
				return nil, 0, err
			}
		}
	}
	n, err = lc.Read(p)
	return nil, n, err
}

// TryRead makes one recv(2) without waiting: n == 0 with err == nil means
// nothing was there.
func (lc *loopConn) TryRead(p []byte) (int, error) {
	n, _, err := rawsock.RecvSome(lc.fd, p)
	return n, err
}

func (lc *loopConn) DelayAcks() { lc.delayAck = true }

// Close closes the socket; from the connection's task only.
func (lc *loopConn) Close() error {
	lc.mu.Lock()
	fd := lc.fd
	lc.fd = -1
	lc.mu.Unlock()
	if fd < 0 {
		return net.ErrClosed
	}
	if lc.t != nil && !lc.t.Detached() {
		lc.t.Loop().Forget(fd)
	}
	return os.NewSyscallError("close", unix.Close(fd))
}

// abort shuts the socket down from any goroutine: the task's waits wake and
// its reads and writes fail, and it closes the socket.
func (lc *loopConn) abort() {
	lc.mu.Lock()
	if lc.fd >= 0 {
		unix.Shutdown(lc.fd, unix.SHUT_RDWR)
	}
	lc.mu.Unlock()
}

func (lc *loopConn) CloseWrite() error {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.fd < 0 {
		return net.ErrClosed
	}
	return os.NewSyscallError("shutdown", unix.Shutdown(lc.fd, unix.SHUT_WR))
}

func (lc *loopConn) LocalAddr() net.Addr {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.fd < 0 {
		return &net.TCPAddr{}
	}
	sa, err := unix.Getsockname(lc.fd)
	if err != nil {
		return &net.TCPAddr{}
	}
	return sockaddrToTCP(sa)
}

func (lc *loopConn) RemoteAddr() net.Addr { return lc.remote }

func (lc *loopConn) SetDeadline(t time.Time) error {
	lc.SetReadDeadline(t)
	return lc.SetWriteDeadline(t)
}

func (lc *loopConn) SetReadDeadline(t time.Time) error {
	lc.rdue = unixNano(t)
	return nil
}

func (lc *loopConn) SetWriteDeadline(t time.Time) error {
	lc.wdue = unixNano(t)
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 1)
}

var _ net.Conn = (*loopConn)(nil)
