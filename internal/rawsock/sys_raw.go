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
