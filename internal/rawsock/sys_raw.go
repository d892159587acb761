//go:build linux && !386

package rawsock

import (
	"syscall"
	"unsafe"
)

// Recv and Send are recv(2) and send(2) on a non-blocking socket,
// made without telling the scheduler (syscall.RawSyscall): they never
// block, and telling it costs more than the bookkeeping. When the whole
// process has been idle, every scheduler-visible system call wakes the
// runtime's monitor thread, which then polls every 20 µs for a millisecond,
// and a call that runs long (a loopback write carries the receiving side's
// TCP work) gets its processor handed to another thread: in a VM, where
// each of those context switches is dear, that was a tenth of the
// load generator's CPU. recvfrom and sendto rather than read and write skip the
// VFS layer (file position lock, iterator set-up), and MSG_NOSIGNAL spares
// a SIGPIPE when the server has gone.
func Recv(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(ptr), uintptr(len(p)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Send: see Recv.
func Send(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(ptr), uintptr(len(p)), syscall.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// DelayAcks turns delayed acknowledgements back on for the TCP socket fd
// (setsockopt TCP_QUICKACK 0), raw like Recv and Send; see
// Conn.DelayAcks. It cannot fail on a TCP socket, and a failure would only
// cost an acknowledgement: the error is ignored.
func DelayAcks(fd int) {
	off := int32(0)
	syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK,
		uintptr(unsafe.Pointer(&off)), unsafe.Sizeof(off), 0)
}
