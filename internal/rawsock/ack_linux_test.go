package rawsock

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pureAcksIn is PureAcksIn for a test.
func pureAcksIn(t *testing.T, c net.Conn) int {
	t.Helper()
	n, err := PureAcksIn(c.(*net.TCPConn))
	require.NoError(t, err)
	return n
}

// heldExchanges has a client make rounds pairs of requests on a fresh
// connection: one the server holds for longer than the kernel waits to
// acknowledge it on its own, then one answered at once, as an LL-HLS
// player's blocking playlist request and its part request. It returns how
// many pure ACKs the client received during those rounds.
func heldExchanges(t *testing.T, rounds int, delay bool) int {
	client, server := pair(t)
	c := New(server)
	require.NotNil(t, c)
	buf, cbuf := make([]byte, 64), make([]byte, 64)
	request := func() {
		_, err := client.Write([]byte("q"))
		require.NoError(t, err)
	}
	answer := func() {
		_, err := client.Read(cbuf)
		require.NoError(t, err)
	}
	// Warm up past the quick ACKs of a new connection.
	for range 20 {
		request()
		_, err := c.Read(buf)
		require.NoError(t, err)
		_, err = c.Write([]byte("a"))
		require.NoError(t, err)
		answer()
	}
	before := pureAcksIn(t, client)
	for range rounds {
		request() // held
		_, err := c.Read(buf)
		require.NoError(t, err)
		time.Sleep(80 * time.Millisecond) // the kernel ACKs it meanwhile
		if delay {
			c.DelayAcks()
		}
		quick := make(chan error, 1)
		go func() { // the client asks again as soon as it has the answer
			_, err := client.Read(cbuf)
			if err == nil {
				_, err = client.Write([]byte("q"))
			}
			quick <- err
		}()
		unsent, n, err := c.SendRecv([]byte("a"), buf, false)
		require.NoError(t, err)
		require.Empty(t, unsent)
		require.NoError(t, <-quick)
		if n == 0 { // the quick request was not there yet
			_, err = c.Read(buf)
			require.NoError(t, err)
		}
		_, err = c.Write([]byte("a"))
		require.NoError(t, err)
		answer()
	}
	time.Sleep(10 * time.Millisecond) // let the last segments land
	return pureAcksIn(t, client) - before
}

// TestDelayAcksAfterHeldAnswer: once the kernel has acknowledged a held
// request by itself, the next request is acknowledged by a segment of its
// own unless DelayAcks turned delayed ACKs back on; with it, the only
// pure ACK per round is the one the hold needs.
func TestDelayAcksAfterHeldAnswer(t *testing.T) {
	const rounds = 5
	without := heldExchanges(t, rounds, false)
	with := heldExchanges(t, rounds, true)
	t.Logf("pure ACKs in %d rounds: %d without DelayAcks, %d with", rounds, without, with)
	if without < 2*rounds-1 {
		t.Skipf("this kernel sent %d pure ACKs in %d rounds without DelayAcks: nothing to save", without, rounds)
	}
	require.LessOrEqual(t, with, rounds+1, "DelayAcks left the quick requests' acknowledgements on segments of their own")
}
