//go:build linux

package loadtest

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/amphi-live/amphi/internal/evloop"
)

// startLoop runs an event loop until the test ends; exited is closed when
// its run returns.
func startLoop(t *testing.T) (lp *evloop.Loop, cancel context.CancelFunc, exited chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lp, err := evloop.New(ctx)
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

// inLoop runs fn as a task of a fresh loop and waits for it. fn reports
// with assert, not require: it does not run on the test's goroutine.
func inLoop(t *testing.T, fn func(tk *evloop.Task)) {
	t.Helper()
	lp, _, _ := startLoop(t)
	done := make(chan struct{})
	require.True(t, lp.Add(func(tk *evloop.Task) {
		defer close(done)
		fn(tk)
	}))
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the task did not finish within 20 s")
	}
}

// loopConn is a conn to url made by a loop task, as listeners make them.
func loopConn(t *testing.T, url string, local netip.Addr, fn func(c *conn)) {
	t.Helper()
	c := newConn(testTarget(t, url), local)
	inLoop(t, func(tk *evloop.Task) {
		c.lp = tk.Loop()
		defer c.close()
		fn(c)
	})
}

// setLoopSendBuffer shrinks a loop conn's send buffer to n bytes.
func setLoopSendBuffer(c *conn, n int) error {
	return unix.SetsockoptInt(c.ls.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
}

// A request in flight when the loop's context ends returns errClosed, and
// so does the next; an exited loop takes no task.
func TestLoopConnFailures(t *testing.T) {
	t.Run("the loop's context ends mid-request", func(t *testing.T) {
		addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			readRequest(br)
			time.Sleep(2 * time.Second)
		})
		lp, cancel, exited := startLoop(t)
		c := newConn(testTarget(t, addr), netip.Addr{})
		errs := make(chan error, 2)
		require.True(t, lp.Add(func(tk *evloop.Task) {
			c.lp = tk.Loop()
			defer c.close()
			_, err := c.get(soon(), []byte("/"), nil)
			errs <- err
			_, err = c.get(soon(), []byte("/"), nil)
			errs <- err
		}))
		time.Sleep(50 * time.Millisecond)
		cancel()
		for range 2 {
			select {
			case err := <-errs:
				require.ErrorIs(t, err, errClosed)
			case <-time.After(5 * time.Second):
				t.Fatal("a request outlived the loop's context by 5 s")
			}
		}
		<-exited
		require.False(t, lp.Add(func(*evloop.Task) {}), "a loop that has exited takes no task")
	})
}
