//go:build !linux

package loadtest

import (
	"errors"
	"net/netip"
	"testing"
)

// loopConn: there are no event loops here (eachModel does not call it).
func loopConn(t *testing.T, _ string, _ netip.Addr, _ func(c *conn)) {
	t.Skip("no event loop on this system")
}

func setLoopSendBuffer(*conn, int) error { return errors.New("no event loop on this system") }
