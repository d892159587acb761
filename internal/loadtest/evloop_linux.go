//go:build linux

package loadtest

import (
	"context"
	"io"
	"iter"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/amphi-live/amphi/internal/rawsock"
)

// An evloop runs listeners as coroutines (iter.Pull) on one goroutine,
// over sockets of its own epoll set, the way an event-driven load
// generator (wrk, h2load) runs its connections.
//
// Why: with a goroutine per listener, each wait for an answer parks the
// goroutine in Go's poller and each answer makes the scheduler find it,
// queue it and switch to it; in a profile at 2,000 listeners that was a
// tenth of the generator's CPU, and the generator, which shares the
// machine with the server it measures, was what ran out of CPU first at
// 5,000. Here a listener that has to wait yields to the loop, and the loop
// resumes it directly when epoll reports its socket (a coroutine switch
// costs about a quarter of a goroutine hand-off through a channel, and
// skips the poller's bookkeeping). The listener code itself stays
// straight-line.
//
// The loop goroutine parks in Go's poller on the epoll descriptor itself,
// so an idle loop costs nothing and other goroutines (the ramp, the
// progress line) are scheduled as usual. Tasks of one loop can wait for
// each other (park, unpark: a hint listener and its fetcher). Timeouts and
// sleeps are the loop's: request deadlines (seconds) are checked by a
// scan of its tasks every ioScan, sleeps are kept in a heap.
type evloop struct {
	ctx  context.Context
	epfd int
	efd  int      // eventfd: other goroutines wake the loop through it
	f    *os.File // epfd, for parking in Go's poller
	rc   syscall.RawConn

	byFD   []*task // the task whose socket has that descriptor
	tasks  []*task // live tasks, for the deadline scan
	ready  []*task
	sleeps sleepHeap
	events []unix.EpollEvent
	n      int                // events from the last epoll_wait
	pollFn func(uintptr) bool // pollNow for rc.Read, bound once

	cur      *task // the task running now
	closing  bool
	nextScan int64     // unix ns: scan for expired deadlines then
	parkedTo time.Time // f's read deadline

	mu       sync.Mutex
	incoming []func(*task)
	exited   bool
}

// task is one coroutine of the loop: a listener.
type task struct {
	lp    *evloop
	idx   int // in lp.tasks
	yield func(struct{}) bool
	next  func() (struct{}, bool)
	stop  func()

	state taskState
	fd    int    // the socket waited on (stateIO)
	due   int64  // unix ns; 0: none
	gen   uint32 // counts sleeps, to tell a current heap entry from a stale one
	woke  wakeReason
}

type taskState uint8

const (
	stateRunning taskState = iota
	stateIO                // waiting for an event on fd, or due
	stateSleep             // waiting for due
	stateParked            // waiting for another task's unpark
	stateReady             // to be resumed
)

type wakeReason uint8

const (
	wokeIO wakeReason = iota
	wokeDue
	wokeClosing
)

const (
	// ioScan is how often deadlines are checked: a request may run this
	// much past its limit, against limits of seconds.
	ioScan    = int64(100 * time.Millisecond)
	maxEvents = 256
	wakeData  = -1 // the eventfd's epoll data
)

// evloopAvailable reports whether listeners can run on event loops here.
const evloopAvailable = true

// newEvloop sets up a loop for run.
func newEvloop(ctx context.Context) (*evloop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	lp := &evloop{ctx: ctx, epfd: epfd, efd: -1, events: make([]unix.EpollEvent, maxEvents)}
	lp.pollFn = func(uintptr) bool {
		lp.pollNow()
		return lp.n > 0
	}
	fail := func(what string, err error) (*evloop, error) {
		lp.closeFDs()
		return nil, os.NewSyscallError(what, err)
	}
	if lp.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fail("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: wakeData}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, lp.efd, &ev); err != nil {
		return fail("epoll_ctl", err)
	}
	// Non-blocking, so that os.NewFile hands it to Go's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		return fail("fcntl", err)
	}
	lp.f = os.NewFile(uintptr(epfd), "loadtest-epoll")
	if err := lp.f.SetReadDeadline(time.Time{}); err != nil {
		return fail("poller", err) // not pollable: no loop
	}
	if lp.rc, err = lp.f.SyscallConn(); err != nil {
		return fail("poller", err)
	}
	return lp, nil
}

func (lp *evloop) closeFDs() {
	if lp.f != nil {
		lp.f.Close()
	} else if lp.epfd >= 0 {
		unix.Close(lp.epfd)
	}
	if lp.efd >= 0 {
		unix.Close(lp.efd)
	}
}

// add hands fn to the loop, which runs it as a task. It reports false when
// the loop has exited (its context is done).
func (lp *evloop) add(fn func(*task)) bool {
	lp.mu.Lock()
	if lp.exited {
		lp.mu.Unlock()
		return false
	}
	lp.incoming = append(lp.incoming, fn)
	lp.mu.Unlock()
	lp.wake()
	return true
}

// wake makes a parked loop look at its incoming tasks and its context.
func (lp *evloop) wake() {
	one := uint64(1)
	unix.Write(lp.efd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// run runs tasks until the loop's context is done and every task has
// returned, and then closes the loop's descriptors.
func (lp *evloop) run() {
	defer lp.closeFDs()
	stopWake := context.AfterFunc(lp.ctx, lp.wake)
	defer stopWake()
	for {
		if !lp.closing && lp.ctx.Err() != nil {
			lp.closeAll()
		}
		if lp.takeIncoming() {
			return
		}
		lp.timers(time.Now().UnixNano())
		for i := 0; i < len(lp.ready); i++ {
			lp.resume(lp.ready[i])
		}
		clear(lp.ready)
		lp.ready = lp.ready[:0]
		lp.park()
		lp.dispatch()
	}
}

// takeIncoming starts the tasks handed over by add, and reports whether
// the loop is done: closing, with no task left.
func (lp *evloop) takeIncoming() (exit bool) {
	lp.mu.Lock()
	in := lp.incoming
	lp.incoming = nil
	if lp.closing && len(in) == 0 && len(lp.tasks) == 0 {
		lp.exited = true
		lp.mu.Unlock()
		return true
	}
	lp.mu.Unlock()
	for _, fn := range in {
		lp.start(fn)
	}
	return false
}

func (lp *evloop) start(fn func(*task)) {
	lp.resume(lp.newTask(fn))
}

// spawn starts fn as another task of the loop, from one of its tasks; it
// first runs when the calling task waits.
func (lp *evloop) spawn(fn func(*task)) *task {
	t := lp.newTask(fn)
	lp.makeReady(t, wokeIO)
	return t
}

func (lp *evloop) newTask(fn func(*task)) *task {
	t := &task{lp: lp, fd: -1, idx: len(lp.tasks)}
	lp.tasks = append(lp.tasks, t)
	t.next, t.stop = iter.Pull(func(yield func(struct{}) bool) {
		t.yield = yield
		fn(t)
	})
	return t
}

// resume runs t until it waits again or returns.
func (lp *evloop) resume(t *task) {
	t.state = stateRunning
	lp.cur = t
	_, more := t.next()
	lp.cur = nil
	if more {
		return
	}
	t.stop()
	last := lp.tasks[len(lp.tasks)-1]
	lp.tasks[t.idx], last.idx = last, t.idx
	lp.tasks[len(lp.tasks)-1] = nil
	lp.tasks = lp.tasks[:len(lp.tasks)-1]
}

// closeAll wakes every waiting task with errClosed; tasks that wait from
// now on get it at once.
func (lp *evloop) closeAll() {
	lp.closing = true
	for _, t := range lp.tasks {
		if t.state == stateIO || t.state == stateSleep || t.state == stateParked {
			lp.makeReady(t, wokeClosing)
		}
	}
}

func (lp *evloop) makeReady(t *task, why wakeReason) {
	t.state, t.woke = stateReady, why
	lp.ready = append(lp.ready, t)
}

// timers wakes the sleepers that are due and, every ioScan, the tasks
// whose request deadline has passed.
func (lp *evloop) timers(now int64) {
	for len(lp.sleeps) > 0 && lp.sleeps[0].due <= now {
		s := lp.sleeps.pop()
		if s.t.state == stateSleep && s.t.gen == s.gen {
			lp.makeReady(s.t, wokeDue)
		}
	}
	if now < lp.nextScan {
		return
	}
	lp.nextScan = now + ioScan
	for _, t := range lp.tasks {
		if t.state == stateIO && t.due != 0 && t.due <= now {
			lp.makeReady(t, wokeDue)
		}
	}
}

// park collects what epoll has; when it has nothing, it waits in Go's
// poller until it has, or until the next timer. (Nothing is ready when it
// is called: the tasks that run make each other ready within one pass.)
func (lp *evloop) park() {
	lp.n = 0
	to := lp.nextScan
	if len(lp.sleeps) > 0 {
		to = min(to, lp.sleeps[0].due)
	}
	if t := time.Unix(0, to); !t.Equal(lp.parkedTo) {
		lp.parkedTo = t
		lp.f.SetReadDeadline(t)
	}
	// Errors are the deadline (the timers run next) or a closed loop.
	lp.rc.Read(lp.pollFn)
}

// pollNow collects what epoll has without waiting.
func (lp *evloop) pollNow() {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(lp.epfd),
		uintptr(unsafe.Pointer(&lp.events[0])), uintptr(len(lp.events)), 0, 0, 0)
	if e == 0 {
		lp.n = int(r)
	}
}

// dispatch makes the tasks of the collected events ready.
func (lp *evloop) dispatch() {
	for _, ev := range lp.events[:lp.n] {
		fd := int(ev.Fd)
		if fd == wakeData {
			var b [8]byte
			unix.Read(lp.efd, b[:])
			continue
		}
		if fd < len(lp.byFD) {
			if t := lp.byFD[fd]; t != nil && t.state == stateIO && t.fd == fd {
				lp.makeReady(t, wokeIO)
			}
		}
	}
}

// waitIO yields until fd has an event, due (unix ns, 0: none) passes
// (os.ErrDeadlineExceeded) or the loop closes (errClosed). A wake-up may
// be spurious: callers retry their system call.
func (t *task) waitIO(fd int, due int64) error {
	lp := t.lp
	if lp.closing {
		return errClosed
	}
	// A connection may serve two tasks in turn (a hint listener's media
	// connection): its events go to the one waiting.
	for fd >= len(lp.byFD) {
		lp.byFD = append(lp.byFD, nil)
	}
	lp.byFD[fd] = t
	t.state, t.fd, t.due = stateIO, fd, due
	return t.suspend()
}

// sleep yields until d has passed or the loop closes.
func (t *task) sleep(d time.Duration) {
	if t.lp.closing || d <= 0 {
		return
	}
	t.gen++
	t.state, t.due = stateSleep, time.Now().Add(d).UnixNano()
	t.lp.sleeps.push(sleeper{due: t.due, t: t, gen: t.gen})
	t.suspend()
}

// park yields until another task of the loop calls unpark, or the loop
// closes (errClosed).
func (t *task) park() error {
	if t.lp.closing {
		return errClosed
	}
	t.state = stateParked
	return t.suspend()
}

// unpark makes t, when parked, run again; called by the loop's tasks.
func (t *task) unpark() {
	if t.state == stateParked {
		t.lp.makeReady(t, wokeIO)
	}
}

func (t *task) suspend() error {
	if !t.yield(struct{}{}) {
		return errClosed
	}
	t.fd, t.due = -1, 0
	switch t.woke {
	case wokeDue:
		return os.ErrDeadlineExceeded
	case wokeClosing:
		return errClosed
	}
	return nil
}

// sleepHeap is a min-heap of sleepers by due time.
type sleepHeap []sleeper

type sleeper struct {
	due int64
	t   *task
	gen uint32
}

func (h *sleepHeap) push(s sleeper) {
	*h = append(*h, s)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p].due <= a[i].due {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *sleepHeap) pop() sleeper {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a[last] = sleeper{}
	a = a[:last]
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(a) {
			break
		}
		if c+1 < len(a) && a[c+1].due < a[c].due {
			c++
		}
		if a[i].due <= a[c].due {
			break
		}
		a[i], a[c] = a[c], a[i]
		i = c
	}
	*h = a
	return top
}

// loopSock is a plain TCP connection of a loop task: read raw, with the
// request written inside the read that awaits its answer, as rawIO does.
type loopSock struct {
	lp  *evloop
	fd  int
	req []byte // not yet written; the next Read writes it first
	due int64  // the current request's deadline, unix ns
}

// dial connects to addr from local (when valid) before due, for the
// running task.
func (lp *evloop) dial(addr netip.AddrPort, local netip.Addr, due int64) (*loopSock, error) {
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
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fail("epoll_ctl", err)
	}
	err = unix.Connect(fd, sockaddr(addr))
	for err == unix.EINPROGRESS || err == unix.EALREADY || err == unix.EINTR {
		if werr := lp.cur.waitIO(fd, due); werr != nil {
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

// close closes the socket; closing takes it out of the epoll set.
func (s *loopSock) close() {
	if s.fd < 0 {
		return
	}
	if lp := s.lp; s.fd < len(lp.byFD) {
		lp.byFD[s.fd] = nil
	}
	unix.Close(s.fd)
	s.fd = -1
}

// send queues req for the next Read, bounded by due.
func (s *loopSock) send(req []byte, due int64) { s.req, s.due = req, due }

func (s *loopSock) Read(p []byte) (int, error) {
	// The answer cannot come before the request has left: after sending,
	// wait before the first recv.
	skip := false
	if len(s.req) > 0 {
		req := s.req
		s.req = nil
		if _, err := s.Write(req); err != nil {
			return 0, err
		}
		skip = true
	}
	for {
		if !skip {
			n, err := rawsock.Recv(s.fd, p)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
			case err != nil:
				return 0, os.NewSyscallError("read", err)
			case n == 0 && len(p) > 0:
				return 0, io.EOF
			default:
				return n, nil
			}
		}
		skip = false
		if err := s.lp.cur.waitIO(s.fd, s.due); err != nil {
			return 0, err
		}
	}
}

// Write sends all of p, waiting while the socket is full.
func (s *loopSock) Write(p []byte) (int, error) {
	sent := 0
	for sent < len(p) {
		n, err := rawsock.Send(s.fd, p[sent:])
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			if werr := s.lp.cur.waitIO(s.fd, s.due); werr != nil {
				return sent, werr
			}
		case err != nil:
			return sent, os.NewSyscallError("write", err)
		default:
			sent += n
		}
	}
	return sent, nil
}
