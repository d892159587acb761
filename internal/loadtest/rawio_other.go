//go:build !unix

package loadtest

import (
	"io"
	"net"
	"time"
)

// rawIO is the fast read path of unix systems; elsewhere connections are
// read through net.Conn.
type rawIO struct{ io.Reader }

func newRawIO(net.Conn) *rawIO { return nil }

func (*rawIO) send([]byte, time.Time) {}

// rawAvailable reports whether plain TCP connections take the raw path.
const rawAvailable = false
