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
