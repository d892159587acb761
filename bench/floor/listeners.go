//go:build linux

package main

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/amphi-live/amphi/internal/rawsock"
)

// listeners are the client side's connections, in one epoll set whose
// events carry each connection's index. Both clients (the floor's and
// -hls) run on it; they keep their own state per index.
type listeners struct {
	ep    int
	fds   []int
	bufs  [][]byte
	n     []int // bytes in bufs[i]
	start time.Time
	cpu0  float64
}

// dialListeners connects n sockets to addr, with a receive buffer of
// bufSize each, non-blocking and registered for input. close undoes it.
func dialListeners(addr string, n, bufSize int) (*listeners, error) {
	sa, err := sockaddr(addr)
	if err != nil {
		return nil, err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &listeners{ep: ep, n: make([]int, n), cpu0: cpuSeconds(), start: time.Now()}
	for i := range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			l.close()
			return nil, err
		}
		l.fds = append(l.fds, fd)
		l.bufs = append(l.bufs, make([]byte, bufSize))
		if err := unix.Connect(fd, sa); err != nil {
			l.close()
			return nil, fmt.Errorf("connect: %w", err)
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if err := unix.SetNonblock(fd, true); err != nil {
			l.close()
			return nil, err
		}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

func (l *listeners) close() {
	for _, fd := range l.fds {
		unix.Close(fd)
	}
	unix.Close(l.ep)
}

// run reads until end and hands each whole response (head and body) to
// answer with its connection's index; answer must not keep resp, and an
// error from it ends the run. A connection the server closed counts in
// *errs. It returns the CPU the process used and the wall time since
// dialListeners.
func (l *listeners) run(end time.Time, errs *int, answer func(i int, resp []byte) error) (cpu float64, wall time.Duration, err error) {
	events := make([]unix.EpollEvent, 1024)
	for time.Now().Before(end) {
		k, err := epollWait(l.ep, events, waitMillis(end))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0, 0, err
		}
		for _, ev := range events[:max(k, 0)] {
			i := int(ev.Fd)
			buf, n := l.bufs[i], l.n[i]
			m, err := rawsock.Recv(l.fds[i], buf[n:])
			if m <= 0 {
				if err != unix.EAGAIN {
					*errs++
					_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, l.fds[i], nil)
				}
				continue
			}
			n += m
			used := complete(buf[:n])
			if used == 0 {
				if n == len(buf) {
					return 0, 0, errors.New("response larger than the buffer")
				}
				l.n[i] = n
				continue
			}
			err = answer(i, buf[:used])
			l.n[i] = copy(buf, buf[used:n])
			if err != nil {
				return 0, 0, err
			}
		}
	}
	return cpuSeconds() - l.cpu0, time.Since(l.start), nil
}
