// Package httpserve holds the HTTP server plumbing the origin and the edge
// share: a health endpoint, and serving until a context ends with a bounded
// graceful shutdown.
package httpserve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Server is what Serve runs: h1.Server (the origin's and the edge's) or
// net/http's Server.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// Serve serves srv on ln until ctx ends. Then it calls beforeShutdown (to
// release held requests) and shuts srv down, waiting at most 5 s for
// requests in flight.
func Serve(ctx context.Context, srv Server, ln net.Listener, beforeShutdown func()) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	if beforeShutdown != nil {
		beforeShutdown()
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// Health answers GET /healthz with "ok".
func Health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("ok\n"))
}

// ValidAddr reports whether addr is host:port with a numeric port.
func ValidAddr(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return false
	}
	n := 0
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return false
		}
	}
	return true
}
