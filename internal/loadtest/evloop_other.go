//go:build !linux

package loadtest

import (
	"errors"
	"net/netip"

	"github.com/amphi-live/amphi/internal/evloop"
)

// Event loops are Linux's (epoll); elsewhere every listener has its own
// goroutine, and there are no loop sockets.
func dial(*evloop.Loop, netip.AddrPort, netip.Addr, int64) (*loopSock, error) {
	return nil, errors.New("no event loop here")
}

type loopSock struct{ req []byte }

func (*loopSock) close()                    {}
func (*loopSock) send([]byte, int64)        {}
func (*loopSock) Read([]byte) (int, error)  { return 0, errClosed }
func (*loopSock) Write([]byte) (int, error) { return 0, errClosed }
