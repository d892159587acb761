//go:build !unix

package rawsock

import (
	"errors"
	"net"
)

// Conn is only available on Unix systems; New returns nil elsewhere.
type Conn struct{ AfterSend func() bool }

// New returns nil: callers use nc itself.
func New(net.Conn) *Conn { return nil }

var errUnsupported = errors.New("rawsock: not supported on this system")

// Read is never called: New returns nil.
func (*Conn) Read([]byte) (int, error) { return 0, errUnsupported }

// Write is never called: New returns nil.
func (*Conn) Write([]byte) (int, error) { return 0, errUnsupported }

// SendRecv is never called: New returns nil.
func (*Conn) SendRecv(out, _ []byte, _ bool) ([]byte, int, error) { return out, 0, errUnsupported }

// TryRead is never called: New returns nil.
func (*Conn) TryRead([]byte) (int, error) { return 0, errUnsupported }

// DelayAcks is never called: New returns nil.
func (*Conn) DelayAcks() {}
