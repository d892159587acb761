package rawsock

import (
	"net"

	"golang.org/x/sys/unix"
)

// PureAcksIn reports how many segments without data nc has received
// (TCP_INFO), for checking what DelayAcks saves.
func PureAcksIn(nc *net.TCPConn) (int, error) {
	rc, err := nc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info *unix.TCPInfo
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return 0, err
	}
	if gerr != nil {
		return 0, gerr
	}
	return int(info.Segs_in - info.Data_segs_in), nil
}
