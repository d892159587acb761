//go:build linux

package evloop

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// startLoop runs a loop until the test ends; exited is closed when its Run
// returns.
func startLoop(t *testing.T) (lp *Loop, cancel context.CancelFunc, exited chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lp, err := New(ctx)
	require.NoError(t, err)
	exited = make(chan struct{})
	go func() {
		defer close(exited)
		lp.Run()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Error("the loop did not exit within 5 s of its context ending")
		}
	})
	return lp, cancel, exited
}

// socketPair returns a connected non-blocking pair; a is registered with lp.
func socketPair(t *testing.T, lp *Loop) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() {
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	require.NoError(t, lp.Register(fds[0]))
	return fds[0], fds[1]
}

// readLoop reads from fd as a task would: try, and wait on EAGAIN.
func readLoop(tk *Task, fd int, p []byte, due int64) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if err != unix.EAGAIN {
			return n, err
		}
		if err := tk.WaitIO(fd, false, due); err != nil {
			return 0, err
		}
	}
}

// Many tasks sleep for different times on one loop: each wakes after its
// time (and not much later), and the loop exits once its context is done
// and its tasks have returned.
func TestSleeps(t *testing.T) {
	lp, cancel, exited := startLoop(t)
	const n = 300
	var wg sync.WaitGroup
	var early, late atomic.Int64
	for i := range n {
		wg.Add(1)
		d := time.Duration(i%30) * 10 * time.Millisecond
		require.True(t, lp.Add(func(tk *Task) {
			defer wg.Done()
			for range 3 {
				start := time.Now()
				tk.Sleep(d)
				switch took := time.Since(start); {
				case took < d:
					early.Add(1)
				case took > d+time.Second:
					late.Add(1)
				}
			}
		}))
	}
	wg.Wait()
	require.Zero(t, early.Load())
	require.Zero(t, late.Load())
	cancel()
	<-exited
	require.Empty(t, lp.tasks)
	require.False(t, lp.Add(func(*Task) {}), "a loop that has exited takes no task")
}

// A task waiting to read wakes when data arrives, and at its deadline
// when none does.
func TestWaitIO(t *testing.T) {
	lp, _, _ := startLoop(t)
	a, b := socketPair(t, lp)
	errs := make(chan error, 2)
	got := make(chan string, 1)
	require.True(t, lp.Add(func(tk *Task) {
		p := make([]byte, 16)
		n, err := readLoop(tk, a, p, 0)
		got <- string(p[:n])
		errs <- err
		start := time.Now()
		_, err = readLoop(tk, a, p, time.Now().Add(200*time.Millisecond).UnixNano())
		if time.Since(start) < 200*time.Millisecond {
			err = nil // early: fail below
		}
		errs <- err
	}))
	time.Sleep(20 * time.Millisecond)
	_, err := unix.Write(b, []byte("hello"))
	require.NoError(t, err)
	require.Equal(t, "hello", <-got)
	require.NoError(t, <-errs)
	require.ErrorIs(t, <-errs, os.ErrDeadlineExceeded)
}

// Many tasks await one channel; closing it wakes all of them. A loop
// that closes wakes its awaiting tasks with ErrClosed.
func TestAwait(t *testing.T) {
	lp, cancel, exited := startLoop(t)
	const n = 500
	ch := make(chan struct{})
	var woke sync.WaitGroup
	woke.Add(n)
	for range n {
		require.True(t, lp.Add(func(tk *Task) {
			if tk.Await(ch) == nil {
				woke.Done()
			}
		}))
	}
	time.Sleep(20 * time.Millisecond)
	close(ch)
	woke.Wait()

	never := make(chan struct{})
	closed := make(chan error, 1)
	require.True(t, lp.Add(func(tk *Task) {
		ctx := NewContext(context.Background(), tk)
		closed <- Await(ctx, never)
	}))
	time.Sleep(20 * time.Millisecond)
	cancel()
	require.ErrorIs(t, <-closed, ErrClosed)
	<-exited
}

// A detached task may block on anything without holding up the loop's
// other tasks, does its I/O by poll(2), and comes back on Attach.
func TestDetach(t *testing.T) {
	lp, _, _ := startLoop(t)
	a, b := socketPair(t, lp)
	block := make(chan struct{})
	steps := make(chan string, 8)
	require.True(t, lp.Add(func(tk *Task) {
		ctx := NewContext(context.Background(), tk)
		Detach(ctx)
		steps <- "detached"
		<-block // a plain channel receive: only off the loop
		p := make([]byte, 8)
		n, err := readLoop(tk, a, p, time.Now().Add(5*time.Second).UnixNano())
		if err != nil {
			steps <- err.Error()
			return
		}
		steps <- string(p[:n])
		if tk.Attach() && !tk.Detached() {
			steps <- "attached"
		}
		tk.Sleep(time.Millisecond) // a loop wait again
		steps <- "done"
	}))
	require.Equal(t, "detached", <-steps)
	// The loop still runs other tasks while that one blocks.
	other := make(chan struct{})
	require.True(t, lp.Add(func(tk *Task) {
		tk.Sleep(time.Millisecond)
		close(other)
	}))
	select {
	case <-other:
	case <-time.After(5 * time.Second):
		t.Fatal("a detached task held up the loop")
	}
	close(block)
	_, err := unix.Write(b, []byte("data"))
	require.NoError(t, err)
	require.Equal(t, "data", <-steps)
	require.Equal(t, "attached", <-steps)
	require.Equal(t, "done", <-steps)
}

// A task that asks to attach after its loop has exited stays detached.
func TestAttachAfterExit(t *testing.T) {
	lp, cancel, exited := startLoop(t)
	go1 := make(chan struct{})
	res := make(chan bool, 1)
	require.True(t, lp.Add(func(tk *Task) {
		tk.Detach()
		<-go1
		res <- tk.Attach()
	}))
	time.Sleep(20 * time.Millisecond)
	cancel()
	<-exited
	close(go1)
	require.False(t, <-res)
}
