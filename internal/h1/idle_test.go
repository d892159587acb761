package h1

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests cover readIdle: an answer sent inside the next read, and the
// recv skipped before waiting for a client that asked quickly last time.

// idleConn dials addr for exchanges made one at a time.
type idleConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialIdle(t *testing.T, addr string) *idleConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &idleConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (ic *idleConn) send(s string) {
	ic.t.Helper()
	_, err := io.WriteString(ic.c, s)
	require.NoError(ic.t, err)
}

// answer reads one response and returns its body.
func (ic *idleConn) answer() string {
	ic.t.Helper()
	resp, err := http.ReadResponse(ic.br, &http.Request{Method: http.MethodGet})
	require.NoError(ic.t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(ic.t, err)
	return string(b)
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

// slowEcho answers with the path, after 100 ms for /slow.
func slowEcho(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/slow" {
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s", r.URL.Path, b)
}

func TestRequestArrivingDuringHandlerIsAnswered(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(slowEcho)})
	ic := dialIdle(t, addr)
	ic.send(get("/a"))
	require.Equal(t, "/a ", ic.answer()) // a quick client: its next wait skips the recv

	// /b arrives while /slow is being served, before the server waits
	// again: its readiness is gone by then, and the safety deadline must
	// find it.
	began := time.Now()
	ic.send(get("/slow"))
	time.Sleep(30 * time.Millisecond)
	ic.send(get("/b"))
	require.Equal(t, "/slow ", ic.answer())
	require.Equal(t, "/b ", ic.answer())
	require.Less(t, time.Since(began), safetyWait+3*time.Second)

	// The connection now counts as pipelining and waits the usual way:
	// the same sequence is answered without the safety wait.
	for i := range 3 {
		began = time.Now()
		ic.send(get("/slow"))
		time.Sleep(30 * time.Millisecond)
		ic.send(get(fmt.Sprint("/c", i)))
		require.Equal(t, "/slow ", ic.answer())
		require.Equal(t, fmt.Sprint("/c", i, " "), ic.answer())
		require.Less(t, time.Since(began), safetyWait*9/10, "round %d", i)
	}
}

func TestQuickClientTurningSlowKeepsItsConnection(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(slowEcho), IdleTimeout: 10 * time.Second})
	ic := dialIdle(t, addr)
	for i := range 3 {
		ic.send(get(fmt.Sprint("/q", i)))
		require.Equal(t, fmt.Sprint("/q", i, " "), ic.answer())
	}
	// Past the safety deadline: the server looks, finds nothing, and
	// goes on waiting for the idle timeout.
	time.Sleep(safetyWait + 500*time.Millisecond)
	ic.send(get("/late"))
	require.Equal(t, "/late ", ic.answer())
	ic.send(get("/next"))
	require.Equal(t, "/next ", ic.answer())
}

func TestBodyReadAfterSkippedRecvUsesIdleDeadline(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(slowEcho), IdleTimeout: 10 * time.Second})
	ic := dialIdle(t, addr)
	ic.send(get("/a"))
	require.Equal(t, "/a ", ic.answer())
	// The head comes at once, the body after the safety deadline: the
	// body must be read under the idle deadline.
	ic.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
	time.Sleep(safetyWait + 500*time.Millisecond)
	ic.send("hello")
	require.Equal(t, "/up hello", ic.answer())
}

func TestFlushSendsAHeldAnswer(t *testing.T) {
	release := make(chan struct{})
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
		w.(http.Flusher).Flush()
		<-release // the answer must not wait for the handler to return
	})})
	defer close(release)
	ic := dialIdle(t, addr)
	ic.send(get("/"))
	require.Equal(t, "ok", ic.answer())
}

func TestHeldAnswerSentBeforeClose(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(slowEcho)})
	ic := dialIdle(t, addr)
	ic.send(get("/a"))
	require.Equal(t, "/a ", ic.answer())
	ic.send("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	require.Equal(t, "/last ", ic.answer())
	_, err := ic.br.ReadByte()
	require.ErrorIs(t, err, io.EOF)
}

func TestManyQuickExchanges(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(slowEcho)})
	ic := dialIdle(t, addr)
	big := strings.Repeat("x", 100<<10) // past copyLimit: sent at once, not held
	for i := range 200 {
		if i%50 == 49 {
			ic.send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: " + fmt.Sprint(len(big)) + "\r\n\r\n" + big)
			require.Equal(t, "/big "+big, ic.answer())
			continue
		}
		ic.send(get(fmt.Sprint("/", i)))
		require.Equal(t, fmt.Sprint("/", i, " "), ic.answer())
	}
}
