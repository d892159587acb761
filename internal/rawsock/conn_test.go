//go:build unix

package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pair returns a connected loopback TCP pair.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestConnReadWrite(t *testing.T) {
	client, server := pair(t)
	c := New(server)
	require.NotNil(t, c)

	// A read waits for data, then returns what came.
	go func() {
		time.Sleep(20 * time.Millisecond)
		client.Write([]byte("hello"))
	}()
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf[:n]))

	// A write larger than the socket buffers completes once the peer
	// reads: Write waits for writability.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(big))))
		got <- b
	}()
	n, err = c.Write(big)
	require.NoError(t, err)
	require.Equal(t, len(big), n)
	require.Equal(t, big, <-got)

	// The peer closing reads as EOF.
	client.Close()
	_, err = c.Read(buf)
	require.ErrorIs(t, err, io.EOF)
}

func TestConnDeadlinesAndClose(t *testing.T) {
	_, server := pair(t)
	c := New(server)
	require.NoError(t, server.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err := c.Read(make([]byte, 8))
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "got %v", err)

	require.NoError(t, server.SetReadDeadline(time.Time{}))
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	server.Close()
	select {
	case err := <-done:
		require.Error(t, err, "Close must end a waiting Read")
	case <-time.After(5 * time.Second):
		t.Fatal("Read still waiting after Close")
	}
}

func TestNewNeedsTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	require.Nil(t, New(a))
}

func TestSendRecv(t *testing.T) {
	client, server := pair(t)
	c := New(server)
	require.NotNil(t, c)
	buf := make([]byte, 64)

	// The peer answers what was sent; both with and without the first recv.
	go func() {
		b := make([]byte, 64)
		for range 2 {
			n, err := client.Read(b)
			if err != nil {
				return
			}
			client.Write(bytes.ToUpper(b[:n]))
		}
	}()
	var sent int
	c.AfterSend = func() bool { sent++; return true }
	for _, skip := range []bool{false, true} {
		unsent, n, err := c.SendRecv([]byte("ping"), buf, skip)
		require.NoError(t, err)
		require.Empty(t, unsent)
		require.Equal(t, "PING", string(buf[:n]))
	}
	require.Equal(t, 2, sent)

	// AfterSend can stop the read.
	c.AfterSend = func() bool { return false }
	unsent, n, err := c.SendRecv([]byte("x"), buf, true)
	require.NoError(t, err)
	require.Empty(t, unsent)
	require.Zero(t, n)
	got := make([]byte, 1)
	_, err = io.ReadFull(client, got)
	require.NoError(t, err)
	require.Equal(t, "x", string(got))
	c.AfterSend = nil

	// Input already waiting is read at once without skipRecv...
	client.Write([]byte("early"))
	time.Sleep(20 * time.Millisecond)
	_, n, err = c.SendRecv([]byte("y"), buf, false)
	require.NoError(t, err)
	require.Equal(t, "early", string(buf[:n]))

	// ...and with it, only once a deadline ends the wait: TryRead finds it.
	client.Write([]byte("late"))
	time.Sleep(20 * time.Millisecond)
	server.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, n, err = c.SendRecv([]byte("z"), buf, true)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.Zero(t, n)
	n, err = c.TryRead(buf)
	require.NoError(t, err)
	require.Equal(t, "late", string(buf[:n]))
	server.SetReadDeadline(time.Time{})

	// TryRead with nothing there returns at once.
	n, err = c.TryRead(buf)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestSendRecvFullSocket(t *testing.T) {
	_, server := pair(t)
	c := New(server)
	require.NotNil(t, c)
	// The peer never reads: the send stops short and nothing is read.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	unsent, n, err := c.SendRecv(big, make([]byte, 64), true)
	require.NoError(t, err)
	require.NotEmpty(t, unsent)
	require.Less(t, len(unsent), len(big))
	require.Zero(t, n)
}
