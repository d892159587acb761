//go:build linux

package main

import (
	"bytes"
	"iter"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/amphi-live/amphi/internal/rawsock"
)

// serveCoro answers as serveGoroutines does, with the same straight-line
// code per connection, but each connection runs as a coroutine (iter.Pull)
// of one goroutine's epoll loop instead of a goroutine over Go's poller:
// the model amphi's loadtest generator uses, tried here for a server
// before h1 is changed. Connections still come from Go's net.Listener and
// stay net.Conns (h1 needs their deadlines, Close and addresses), so each
// socket is in Go's epoll set as well as the loop's; the loop itself parks
// in Go's poller on its epoll descriptor. The part clock runs on another
// goroutine and wakes the loop through an eventfd, as a published part
// would wake held requests.
func serveCoro(ln net.Listener, period time.Duration, plSize, partSize int, stop <-chan struct{}) (serverReport, error) {
	var r serverReport
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return r, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return r, err
	}
	defer unix.Close(efd)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: -1}); err != nil {
		unix.Close(ep)
		return r, err
	}
	unix.SetNonblock(ep, true)
	epf := os.NewFile(uintptr(ep), "floor-epoll")
	defer epf.Close()
	erc, err := epf.SyscallConn()
	if err != nil {
		return r, err
	}
	wake := func() {
		one := uint64(1)
		unix.Write(efd, (*[8]byte)(unsafe.Pointer(&one))[:])
	}

	playlist := answer("application/vnd.apple.mpegurl", plSize)
	part := answer("audio/mp4", partSize)
	first := nextTick(time.Now(), period)
	var cur atomic.Int64 // the last tick passed
	cur.Store(first.UnixNano()/int64(period) - 1)

	var mu sync.Mutex
	var incoming []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			incoming = append(incoming, nc)
			mu.Unlock()
			wake()
		}
	})
	wg.Go(func() {
		timer := time.NewTimer(time.Until(first))
		defer timer.Stop()
		for {
			select {
			case <-stop:
				ln.Close()
				wake()
				return
			case now := <-timer.C:
				cur.Store(now.UnixNano() / int64(period))
				wake()
				timer.Reset(time.Until(nextTick(now, period)))
			}
		}
	})

	type ctask struct {
		nc      net.Conn
		fd      int
		next    func() (struct{}, bool)
		stopFn  func()
		yield   func(struct{}) bool
		waitIO  bool  // waiting for its socket
		heldFor int64 // waiting for this tick; 0 when not held
	}
	byFD := map[int]*ctask{}
	var ready, held []*ctask
	resume := func(t *ctask) {
		if _, more := t.next(); !more {
			t.stopFn()
			delete(byFD, t.fd)
			t.nc.Close()
		}
	}
	serveConn := func(t *ctask) {
		buf := make([]byte, 4096)
		n := 0
		var out []byte
		for {
			skip := false
			if out != nil {
				if m, err := rawsock.Send(t.fd, out); err != nil || m != len(out) {
					r.short++ // a floor has no send queue
				}
				r.answers++
				out, skip = nil, true // the answer's reply cannot be there yet
			}
			var m int
			for {
				if !skip {
					var err error
					m, err = rawsock.Recv(t.fd, buf[n:])
					if err != syscall.EAGAIN {
						if err != nil || m == 0 {
							return
						}
						break
					}
				}
				skip = false
				t.waitIO = true
				if !t.yield(struct{}{}) {
					return
				}
			}
			n += m
			for {
				end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
				if end < 0 {
					break
				}
				if out != nil { // pipelined: the previous answer first
					rawsock.Send(t.fd, out)
					r.answers++
				}
				out = part
				if k, ok := heldTick(buf[:end]); ok {
					if k > cur.Load() {
						t.heldFor = k
						held = append(held, t)
						if !t.yield(struct{}{}) {
							return
						}
						rawsock.DelayAcks(t.fd) // as h1 does after a hold
					}
					out = playlist
				}
				n = copy(buf, buf[end+4:n])
			}
			if n == len(buf) {
				n = 0 // a floor does not parse long requests
			}
		}
	}

	events := make([]unix.EpollEvent, 256)
	var nev int
	pollFn := func(uintptr) bool {
		k, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(ep),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		nev = 0
		if e == 0 {
			nev = int(k)
		}
		return nev > 0
	}
	lastTick := cur.Load()
	var dl time.Time
	cpu0, start := cpuSeconds(), time.Now()
	for {
		select {
		case <-stop:
			for _, t := range byFD {
				t.nc.Close()
				t.stopFn()
			}
			wg.Wait()
			r.cpu, r.wall = cpuSeconds()-cpu0, time.Since(start)
			return r, nil
		default:
		}
		mu.Lock()
		in := incoming
		incoming = nil
		mu.Unlock()
		for _, nc := range in {
			r.accepted++
			t := &ctask{nc: nc, fd: -1}
			if rc, err := nc.(*net.TCPConn).SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) { t.fd = int(fd) })
			}
			if t.fd < 0 || unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, t.fd,
				&unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(t.fd)}) != nil {
				nc.Close()
				continue
			}
			byFD[t.fd] = t
			t.next, t.stopFn = iter.Pull(func(yield func(struct{}) bool) {
				t.yield = yield
				serveConn(t)
			})
			resume(t)
		}
		if k := cur.Load(); k != lastTick {
			lastTick = k
			kept := held[:0]
			for _, t := range held {
				if t.heldFor <= k {
					t.heldFor = 0
					ready = append(ready, t)
				} else {
					kept = append(kept, t)
				}
			}
			held = kept
		}
		for _, t := range ready {
			resume(t)
		}
		clear(ready)
		ready = ready[:0]
		if now := time.Now(); dl.Sub(now) < 50*time.Millisecond {
			dl = now.Add(100 * time.Millisecond) // to look at stop
			epf.SetReadDeadline(dl)
		}
		erc.Read(pollFn)
		for _, ev := range events[:nev] {
			if ev.Fd < 0 {
				var b [8]byte
				unix.Read(efd, b[:])
				continue
			}
			if t := byFD[int(ev.Fd)]; t != nil && t.waitIO {
				t.waitIO = false
				ready = append(ready, t)
			}
		}
		nev = 0
	}
}
