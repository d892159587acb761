//go:build !linux

package loadtest

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Event loops are Linux's (epoll); elsewhere every listener has its own
// goroutine.
const evloopAvailable = false

type evloop struct{}

func newEvloop(context.Context) (*evloop, error) { return nil, errors.New("no event loop here") }
func (*evloop) add(func(*task)) bool             { return false }
func (*evloop) run()                             {}

type task struct{ lp *evloop }

func (*task) sleep(time.Duration)       {}
func (*task) park() error               { return errClosed }
func (*task) unpark()                   {}
func (*evloop) spawn(func(*task)) *task { return nil }
func (*evloop) dial(netip.AddrPort, netip.Addr, int64) (*loopSock, error) {
	return nil, errors.New("no event loop here")
}

type loopSock struct{ req []byte }

func (*loopSock) close()                    {}
func (*loopSock) send([]byte, int64)        {}
func (*loopSock) Read([]byte) (int, error)  { return 0, errClosed }
func (*loopSock) Write([]byte) (int, error) { return 0, errClosed }
