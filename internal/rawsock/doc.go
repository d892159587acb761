// Package rawsock reads and writes TCP sockets with one system call per
// operation and without the runtime's system-call bookkeeping, for the two
// hot loops that spend most of their CPU in the kernel: the HTTP/1.1 server
// of the origin and the edge (internal/h1) and the load generator
// (internal/loadtest).
//
// Readiness still comes from Go's poller, through syscall.RawConn, so
// deadlines, Close and goroutine parking behave as with net.Conn.
package rawsock
