//go:build unix && (!linux || 386)

package loadtest

import "syscall"

// sysRead and sysWrite are read(2) and write(2) on a non-blocking socket
// (on Linux but 386 they are raw system calls, rawsys_raw.go).
func sysRead(fd int, p []byte) (int, error) { return syscall.Read(fd, p) }

func sysWrite(fd int, p []byte) (int, error) { return syscall.Write(fd, p) }
