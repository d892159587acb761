// Package httpserve holds the HTTP server plumbing the origin and the edge
// share: a health endpoint, and serving until a context ends with a bounded
// graceful shutdown.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
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

// Connection models for the configs' "connections" key: h1 serves each
// connection as a task of an event loop (the default), or on a goroutine
// of its own.
const (
	ConnLoops      = "loops"
	ConnGoroutines = "goroutines"
)

// ValidConnections checks a "connections" value.
func ValidConnections(v string) error {
	if v != ConnLoops && v != ConnGoroutines {
		return fmt.Errorf("connections: %q is not %q or %q", v, ConnLoops, ConnGoroutines)
	}
	return nil
}

// OnLoop is h1.Server.OnLoop for the origin and the edge: the serving
// core (/live/) answers on the event loop, holding requests through
// evloop.Await and detaching before an upstream wait; everything else
// (ingest, the API, metrics) runs detached.
func OnLoop(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/live/") }

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
