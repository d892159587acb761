//go:build unix && (!linux || 386)

package rawsock

import "syscall"

// Recv and Send are read(2) and write(2) on a non-blocking socket (on
// Linux but 386 they are raw system calls, sys_raw.go).
func Recv(fd int, p []byte) (int, error) { return syscall.Read(fd, p) }

// Send: see Recv.
func Send(fd int, p []byte) (int, error) { return syscall.Write(fd, p) }

// DelayAcks is Linux's (sys_raw.go); elsewhere the stack's own
// acknowledgement policy stays.
func DelayAcks(int) {}
