package h1

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/amphi-live/amphi/internal/rawsock"
	"github.com/stretchr/testify/require"
)

// TestHeldAnswerKeepsAcksOnAnswers: a player's blocking playlist request
// is held past the kernel's delayed-ACK timeout, which acknowledges it by
// itself; the part request that follows must still have its
// acknowledgement carried by its answer (rawsock.Conn.DelayAcks), so each
// held-and-quick round costs one pure ACK, not two.
func TestHeldAnswerKeepsAcksOnAnswers(t *testing.T) {
	addr := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			time.Sleep(80 * time.Millisecond)
		}
		w.Write([]byte("ok"))
	})})
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(nc)
	get := func(path string) {
		_, err := nc.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"))
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "ok", bodyOf(t, resp))
	}
	pureAcks := func() int {
		n, err := rawsock.PureAcksIn(nc.(*net.TCPConn))
		require.NoError(t, err)
		return n
	}
	for range 20 { // past a new connection's quick ACKs
		get("/quick")
	}
	const rounds = 5
	before := pureAcks()
	for range rounds {
		get("/hold")
		get("/quick")
	}
	time.Sleep(10 * time.Millisecond)
	got := pureAcks() - before
	t.Logf("%d pure ACKs from the server in %d held-and-quick rounds", got, rounds)
	require.LessOrEqual(t, got, rounds+1)
}
