//go:build linux

package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// startLoop runs an event loop until the test ends; exited is closed when
// its run returns.
func startLoop(t *testing.T) (lp *evloop, cancel context.CancelFunc, exited chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lp, err := newEvloop(ctx)
	require.NoError(t, err)
	exited = make(chan struct{})
	go func() {
		defer close(exited)
		lp.run()
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
func inLoop(t *testing.T, fn func(tk *task)) {
	t.Helper()
	lp, _, _ := startLoop(t)
	done := make(chan struct{})
	require.True(t, lp.add(func(tk *task) {
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
	inLoop(t, func(tk *task) {
		c.lp = tk.lp
		defer c.close()
		fn(c)
	})
}

func TestLoopConnKeepsOneConnectionAlive(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.URL.RequestURI()))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	loopConn(t, srv.URL, netip.Addr{}, func(c *conn) {
		var body []byte
		for i := range 20 {
			path := "/x?_HLS_msn=" + strings.Repeat("1", i+1)
			res, err := c.get(soon(), []byte(path), &body)
			if !assert.NoError(t, err) {
				return
			}
			assert.Equal(t, 200, res.status)
			assert.Equal(t, path, string(body))
			assert.False(t, res.held.Before(res.sent))
		}
		assert.Equal(t, 1, c.dials)
	})
	require.EqualValues(t, 1, conns.Load())
}

func TestLoopConnResponseShapesAndSource(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for readRequest(br) {
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"3\r\nfoo\r\n" + "9\r\n" + host + "\r\n0\r\n\r\n"))
		}
	})
	loopConn(t, addr, netip.MustParseAddr("127.0.0.7"), func(c *conn) {
		var body []byte
		_, err := c.get(soon(), []byte("/"), &body)
		assert.NoError(t, err)
		assert.Equal(t, "foo127.0.0.7", string(body))
	})
	cut := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if readRequest(br) {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"))
		}
	})
	loopConn(t, cut, netip.Addr{}, func(c *conn) {
		_, err := c.get(soon(), []byte("/"), nil)
		assert.Equal(t, errKindClosed, classify(err), "%v", err)
	})
}

// A request larger than the socket takes at once waits for room in the
// loop, and the answer is read after it.
func TestLoopConnRequestThatFillsTheSocket(t *testing.T) {
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for readRequest(br) {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		}
	})
	loopConn(t, addr, netip.Addr{}, func(c *conn) {
		var body []byte
		_, err := c.get(soon(), []byte("/small"), &body)
		assert.NoError(t, err)
		assert.NoError(t, unix.SetsockoptInt(c.ls.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096))
		path := []byte("/" + strings.Repeat("a", 1<<20))
		for range 2 {
			res, err := c.get(soon(), path, &body)
			assert.NoError(t, err)
			assert.Equal(t, 200, res.status)
			assert.Equal(t, "ok", string(body))
		}
		assert.Equal(t, 1, c.dials)
	})
}

func TestLoopConnRedialsAStaleKeepAliveConnection(t *testing.T) {
	var conns atomic.Int64
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		if readRequest(br) {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		}
	})
	loopConn(t, addr, netip.Addr{}, func(c *conn) {
		for range 3 {
			res, err := c.get(soon(), []byte("/"), nil)
			assert.NoError(t, err)
			assert.Equal(t, 200, res.status)
			c.lp.cur.sleep(10 * time.Millisecond) // let the close land
		}
	})
	require.EqualValues(t, 3, conns.Load())
}

func TestLoopConnFailures(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close()
		loopConn(t, "http://"+addr, netip.Addr{}, func(c *conn) {
			_, err := c.get(soon(), []byte("/"), nil)
			assert.Equal(t, errKindRefused, classify(err), "%v", err)
		})
	})
	t.Run("timeout", func(t *testing.T) {
		addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			readRequest(br)
			time.Sleep(2 * time.Second)
		})
		loopConn(t, addr, netip.Addr{}, func(c *conn) {
			start := time.Now()
			_, err := c.get(time.Now().Add(100*time.Millisecond), []byte("/"), nil)
			assert.Equal(t, errKindTimeout, classify(err), "%v", err)
			// Deadlines are checked every ioScan.
			assert.Less(t, time.Since(start), 100*time.Millisecond+time.Duration(ioScan)+time.Second)
		})
	})
	t.Run("the loop's context ends mid-request", func(t *testing.T) {
		addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			readRequest(br)
			time.Sleep(2 * time.Second)
		})
		lp, cancel, exited := startLoop(t)
		c := newConn(testTarget(t, addr), netip.Addr{})
		errs := make(chan error, 2)
		require.True(t, lp.add(func(tk *task) {
			c.lp = tk.lp
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
		require.False(t, lp.add(func(*task) {}), "a loop that has exited takes no task")
	})
}

// Many tasks sleep for different times on one loop: each wakes after its
// time (and not much later), and the loop exits once its context is done
// and its tasks have returned.
func TestLoopSleeps(t *testing.T) {
	lp, cancel, exited := startLoop(t)
	const n = 300
	var wg sync.WaitGroup
	var early, late atomic.Int64
	for i := range n {
		wg.Add(1)
		d := time.Duration(i%30) * 10 * time.Millisecond
		require.True(t, lp.add(func(tk *task) {
			defer wg.Done()
			for range 3 {
				start := time.Now()
				tk.sleep(d)
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
}

func TestLoopConnDoesNotAllocatePerRequest(t *testing.T) {
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + strings.Repeat("x", 300))
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		buf := make([]byte, 4096)
		for {
			n, err := br.Read(buf)
			if err != nil {
				return
			}
			if bytes.HasSuffix(buf[:n], []byte("\r\n\r\n")) {
				c.Write(answer)
			}
		}
	})
	loopConn(t, addr, netip.Addr{}, func(c *conn) {
		var body []byte
		path := []byte("/live/x/audio.m3u8?_HLS_msn=12&_HLS_part=3")
		_, err := c.get(soon(), path, &body)
		assert.NoError(t, err)
		deadline := soon()
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := c.get(deadline, path, &body); err != nil {
				t.Error(err)
			}
		})
		assert.Less(t, allocs, 1.0)
	})
}
