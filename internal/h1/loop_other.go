//go:build !linux

package h1

import (
	"errors"
	"net"
	"syscall"
)

// Event loops are Linux's (epoll): elsewhere every connection has its own
// goroutine.
const loopsAvailable = false

func (s *Server) startLoops(int) error { return errors.ErrUnsupported }

func (s *Server) serveLoops(syscall.RawConn) error { return errors.ErrUnsupported }

// loopConn is never made here.
type loopConn struct {
	net.Conn
	afterSend func() bool
}

func (*loopConn) abort() {}
func (*loopConn) SendRecv(out, _ []byte, _ bool) ([]byte, int, error) {
	return out, 0, errors.ErrUnsupported
}
func (*loopConn) TryRead([]byte) (int, error) { return 0, errors.ErrUnsupported }
func (*loopConn) DelayAcks()                  {}
