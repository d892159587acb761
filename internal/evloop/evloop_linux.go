//go:build linux

package evloop

import (
	"context"
	"iter"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/amphi-live/amphi/internal/rawsock"
)

// Available reports whether loops run here.
const Available = true

// A Loop runs tasks as coroutines on the goroutine that calls Run.
//
// The loop goroutine parks in Go's poller on the epoll descriptor itself,
// so an idle loop costs nothing and other goroutines are scheduled as
// usual. Timeouts are the loop's: I/O deadlines (seconds, in practice) are
// checked by a scan of its tasks every ioScan, sleeps are kept in a heap.
type Loop struct {
	ctx  context.Context
	epfd int
	efd  int      // eventfd: other goroutines wake the loop through it
	f    *os.File // epfd, for parking in Go's poller
	rc   syscall.RawConn

	byFD   []*Task // the task whose socket has that descriptor
	tasks  []*Task // attached tasks, for the deadline scan and closing
	ready  []*Task
	sleeps sleepHeap
	awaits map[<-chan struct{}][]awaiter
	events []unix.EpollEvent
	n      int                // events from the last epoll_wait
	pollFn func(uintptr) bool // pollNow for rc.Read, bound once

	cur      *Task // the task running now
	closing  bool
	nextScan int64     // unix ns: scan for expired deadlines then
	parkedTo time.Time // f's read deadline

	mu       sync.Mutex
	incoming []func()
	exited   bool
}

// Task is one coroutine of a loop.
type Task struct {
	lp    *Loop
	idx   int // in lp.tasks, while attached
	yield func(struct{}) bool
	next  func() (struct{}, bool)
	stop  func()

	state    taskState
	fd       int    // the socket waited on (stateIO)
	due      int64  // unix ns; 0: none
	gen      uint32 // counts waits, to tell a current heap or await entry from a stale one
	woke     wakeReason
	detached bool // running on a goroutine of its own (Detach)
	// onLoop is the loop's own note that t is one of its tasks (not
	// detached, not returned); written and read by the loop goroutine only,
	// which reads a task's other fields only when it is set: a detached
	// task writes them on its own goroutine.
	onLoop  bool
	refused bool // the last Attach found the loop gone
}

type taskState uint8

const (
	stateRunning taskState = iota
	stateIO                // waiting for an event on fd, or due
	stateSleep             // waiting for due
	stateParked            // waiting for another task's Unpark
	stateAwait             // waiting for a channel to close
	stateReady             // to be resumed
	stateDetach            // leaving the loop (Detach)
)

type wakeReason uint8

const (
	wokeIO wakeReason = iota
	wokeDue
	wokeClosing
)

type awaiter struct {
	t   *Task
	gen uint32
}

const (
	// ioScan is how often I/O deadlines are checked: a wait may run this
	// much past its deadline, against deadlines of seconds.
	ioScan    = int64(100 * time.Millisecond)
	maxEvents = 256
	wakeData  = -1 // the eventfd's epoll data
)

// New sets up a loop. It closes when ctx ends: every waiting task gets
// ErrClosed, and Run returns once the last task has returned.
func New(ctx context.Context) (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	lp := &Loop{ctx: ctx, epfd: epfd, efd: -1, events: make([]unix.EpollEvent, maxEvents),
		awaits: make(map[<-chan struct{}][]awaiter)}
	lp.pollFn = func(uintptr) bool {
		lp.pollNow()
		return lp.n > 0
	}
	fail := func(what string, err error) (*Loop, error) {
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
	lp.f = os.NewFile(uintptr(epfd), "evloop-epoll")
	if err := lp.f.SetReadDeadline(time.Time{}); err != nil {
		return fail("poller", err) // not pollable: no loop
	}
	if lp.rc, err = lp.f.SyscallConn(); err != nil {
		return fail("poller", err)
	}
	return lp, nil
}

func (lp *Loop) closeFDs() {
	if lp.f != nil {
		lp.f.Close()
	} else if lp.epfd >= 0 {
		unix.Close(lp.epfd)
	}
	if lp.efd >= 0 {
		unix.Close(lp.efd)
	}
}

// Add hands fn to the loop, which runs it as a task. It reports false when
// the loop has exited.
func (lp *Loop) Add(fn func(*Task)) bool {
	return lp.post(func() { lp.resume(lp.newTask(fn)) })
}

// post runs fn on the loop, from any goroutine; false when the loop has
// exited.
func (lp *Loop) post(fn func()) bool {
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

// wake makes a parked loop look at its incoming work and its context.
func (lp *Loop) wake() {
	one := uint64(1)
	unix.Write(lp.efd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// Run runs tasks until the loop's context is done and every attached task
// has returned, and then closes the loop's descriptors.
func (lp *Loop) Run() {
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

// takeIncoming runs what post handed over, and reports whether the loop is
// done: closing, with no task left.
func (lp *Loop) takeIncoming() (exit bool) {
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
		fn()
	}
	return false
}

// Spawn starts fn as another task of the loop, from one of its tasks; it
// first runs when the calling task waits.
func (lp *Loop) Spawn(fn func(*Task)) *Task {
	t := lp.newTask(fn)
	lp.makeReady(t, wokeIO)
	return t
}

func (lp *Loop) newTask(fn func(*Task)) *Task {
	t := &Task{lp: lp, fd: -1}
	lp.attach(t)
	t.next, t.stop = iter.Pull(func(yield func(struct{}) bool) {
		t.yield = yield
		fn(t)
	})
	return t
}

func (lp *Loop) attach(t *Task) {
	t.onLoop = true
	t.idx = len(lp.tasks)
	lp.tasks = append(lp.tasks, t)
}

func (lp *Loop) detach(t *Task) {
	t.onLoop = false
	last := lp.tasks[len(lp.tasks)-1]
	lp.tasks[t.idx], last.idx = last, t.idx
	lp.tasks[len(lp.tasks)-1] = nil
	lp.tasks = lp.tasks[:len(lp.tasks)-1]
}

// resume runs t until it waits again, detaches or returns.
func (lp *Loop) resume(t *Task) {
	t.state = stateRunning
	lp.cur = t
	_, more := t.next()
	lp.cur = nil
	switch {
	case !more:
		t.stop()
		lp.detach(t)
	case t.state == stateDetach:
		lp.detach(t)
		go lp.drive(t)
	}
}

// drive runs a detached task on its own goroutine until it returns or asks
// to attach again.
func (lp *Loop) drive(t *Task) {
	for {
		_, more := t.next()
		if !more {
			t.stop()
			return
		}
		// Attach: hand t back to the loop, unless the loop has exited.
		if lp.post(func() { lp.adopt(t) }) {
			return
		}
		t.refused = true
	}
}

// adopt takes a task back that asked to attach.
func (lp *Loop) adopt(t *Task) {
	t.detached = false
	lp.attach(t)
	lp.makeReady(t, wokeIO)
}

// closeAll wakes every waiting task with ErrClosed; tasks that wait from
// now on get it at once.
func (lp *Loop) closeAll() {
	lp.closing = true
	for _, t := range lp.tasks {
		switch t.state {
		case stateIO, stateSleep, stateParked, stateAwait:
			lp.makeReady(t, wokeClosing)
		}
	}
}

func (lp *Loop) makeReady(t *Task, why wakeReason) {
	t.state, t.woke = stateReady, why
	lp.ready = append(lp.ready, t)
}

// timers wakes the sleepers that are due and, every ioScan, the tasks
// whose I/O deadline has passed.
func (lp *Loop) timers(now int64) {
	for len(lp.sleeps) > 0 && lp.sleeps[0].due <= now {
		s := lp.sleeps.pop()
		if s.t.onLoop && s.t.state == stateSleep && s.t.gen == s.gen {
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
func (lp *Loop) park() {
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
func (lp *Loop) pollNow() {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(lp.epfd),
		uintptr(unsafe.Pointer(&lp.events[0])), uintptr(len(lp.events)), 0, 0, 0)
	if e == 0 {
		lp.n = int(r)
	}
}

// dispatch makes the tasks of the collected events ready.
func (lp *Loop) dispatch() {
	for _, ev := range lp.events[:lp.n] {
		fd := int(ev.Fd)
		if fd == wakeData {
			var b [8]byte
			unix.Read(lp.efd, b[:])
			continue
		}
		if fd < len(lp.byFD) {
			if t := lp.byFD[fd]; t != nil && t.onLoop && t.state == stateIO && t.fd == fd {
				lp.makeReady(t, wokeIO)
			}
		}
	}
}

// Register adds the non-blocking socket fd to the loop's epoll set, for
// its tasks' WaitIO. Closing fd takes it out again; call Forget then.
func (lp *Loop) Register(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, fd, &ev))
}

// Forget drops the loop's note of which task waits on fd, before fd is
// closed; from the loop's tasks only.
func (lp *Loop) Forget(fd int) {
	if fd >= 0 && fd < len(lp.byFD) {
		lp.byFD[fd] = nil
	}
}

// Current returns the task running now; from the loop's tasks only.
func (lp *Loop) Current() *Task { return lp.cur }

// Loop returns the task's loop.
func (t *Task) Loop() *Loop { return t.lp }

// Detached reports whether the task runs on a goroutine of its own.
func (t *Task) Detached() bool { return t.detached }

// WaitIO waits until fd (registered with the loop) may be read or, with
// write set, written; until due (unix ns, 0: none) passes
// (os.ErrDeadlineExceeded); or until the loop closes (ErrClosed). A
// wake-up may be spurious: callers retry their system call. Readiness is
// edge-triggered, so a caller must have found fd not ready (EAGAIN), or
// know it cannot be yet, before it waits.
func (t *Task) WaitIO(fd int, write bool, due int64) error {
	if t.detached {
		return pollWait(fd, write, due)
	}
	lp := t.lp
	if lp.closing {
		return ErrClosed
	}
	// A socket may serve two tasks in turn: its events go to the one
	// waiting.
	for fd >= len(lp.byFD) {
		lp.byFD = append(lp.byFD, nil)
	}
	lp.byFD[fd] = t
	t.state, t.fd, t.due = stateIO, fd, due
	return t.suspend()
}

// Recv reads into p from fd (non-blocking, registered with the loop),
// waiting while there is nothing to read, within due as for WaitIO. A
// closed peer is io.EOF.
func (t *Task) Recv(fd int, p []byte, due int64) (int, error) {
	for {
		if n, wait, err := rawsock.RecvSome(fd, p); !wait {
			return n, err
		}
		if err := t.WaitIO(fd, false, due); err != nil {
			return 0, err
		}
	}
}

// Send writes all of p to fd (non-blocking, registered with the loop),
// waiting while the socket is full, within due as for WaitIO.
func (t *Task) Send(fd int, p []byte, due int64) (int, error) {
	rest := p
	for {
		var err error
		if rest, err = rawsock.SendSome(fd, rest); err != nil || len(rest) == 0 {
			return len(p) - len(rest), err
		}
		if err := t.WaitIO(fd, true, due); err != nil {
			return len(p) - len(rest), err
		}
	}
}

// pollWait is WaitIO off the loop: poll(2), blocking this goroutine's
// thread as any system call does.
func pollWait(fd int, write bool, due int64) error {
	events := int16(unix.POLLIN | unix.POLLRDHUP)
	if write {
		events = unix.POLLOUT
	}
	timeout := -1
	if due != 0 {
		left := due - time.Now().UnixNano()
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		timeout = int((left + int64(time.Millisecond) - 1) / int64(time.Millisecond))
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	n, err := unix.Poll(fds, timeout)
	switch {
	case err == unix.EINTR:
		return nil
	case err != nil:
		return os.NewSyscallError("poll", err)
	case n == 0:
		return os.ErrDeadlineExceeded
	}
	return nil
}

// Sleep waits until d has passed or the loop closes.
func (t *Task) Sleep(d time.Duration) {
	if t.detached {
		time.Sleep(d)
		return
	}
	if t.lp.closing || d <= 0 {
		return
	}
	t.gen++
	t.state, t.due = stateSleep, time.Now().Add(d).UnixNano()
	t.lp.sleeps.push(sleeper{due: t.due, t: t, gen: t.gen})
	t.suspend()
}

// Park waits until another task of the loop calls Unpark, or the loop
// closes (ErrClosed). Only for attached tasks.
func (t *Task) Park() error {
	if t.lp.closing || t.detached {
		return ErrClosed
	}
	t.state = stateParked
	return t.suspend()
}

// Unpark makes t, when parked, run again; called by the loop's tasks.
func (t *Task) Unpark() {
	if t.state == stateParked {
		t.lp.makeReady(t, wokeIO)
	}
}

// Await waits until ch is closed, or the loop closes (ErrClosed). The
// tasks of a loop waiting on one channel cost it one goroutine, which
// wakes them all when the channel closes.
func (t *Task) Await(ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	default:
	}
	if t.detached {
		<-ch
		return nil
	}
	lp := t.lp
	if lp.closing {
		return ErrClosed
	}
	ws, watched := lp.awaits[ch]
	if !watched {
		go lp.watch(ch)
	}
	t.gen++
	lp.awaits[ch] = append(ws, awaiter{t: t, gen: t.gen})
	t.state = stateAwait
	return t.suspend()
}

// watch tells the loop when ch closes.
func (lp *Loop) watch(ch <-chan struct{}) {
	select {
	case <-ch:
		lp.post(func() { lp.closed(ch) })
	case <-lp.ctx.Done(): // closeAll wakes the waiters
	}
}

// closed wakes the tasks still waiting on ch.
func (lp *Loop) closed(ch <-chan struct{}) {
	for _, w := range lp.awaits[ch] {
		if w.t.onLoop && w.t.state == stateAwait && w.t.gen == w.gen {
			lp.makeReady(w.t, wokeIO)
		}
	}
	delete(lp.awaits, ch)
}

// Detach moves the task off the loop onto a goroutine of its own, where its
// waits block that goroutine (WaitIO by poll(2)), so that it may call code
// that blocks in other ways. Attach brings it back.
func (t *Task) Detach() {
	if t.detached {
		return
	}
	t.detached = true
	t.state = stateDetach
	t.yield(struct{}{})
}

// Attach brings a detached task back onto its loop. It reports false when
// the loop has exited, and the task stays detached.
func (t *Task) Attach() bool {
	if !t.detached {
		return true
	}
	// The goroutine driving t takes this yield as the request (drive).
	t.yield(struct{}{})
	if t.refused {
		t.refused = false
		return false
	}
	return true
}

func (t *Task) suspend() error {
	if !t.yield(struct{}{}) {
		return ErrClosed
	}
	t.fd, t.due = -1, 0
	switch t.woke {
	case wokeDue:
		return os.ErrDeadlineExceeded
	case wokeClosing:
		return ErrClosed
	}
	return nil
}

// sleepHeap is a min-heap of sleepers by due time.
type sleepHeap []sleeper

type sleeper struct {
	due int64
	t   *Task
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
