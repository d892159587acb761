// Package h1 is a lean HTTP/1.1 server for the origin's and the edge's hot
// path: thousands of keep-alive connections each asking, several times a
// second, for a small pre-rendered playlist or an immutable part.
//
// Why not net/http's Server: per request it starts a goroutine that reads
// ahead to notice a closed connection (a goroutine, an extra read syscall and
// two deadline changes), builds a context, a Request with a fresh Header map
// and URL, a response with its own Header map, and formats a Date; at 20,000
// requests/s on two cores that machinery costs more CPU than the syscalls
// themselves. Why not fasthttp: its handlers are not http.Handlers, and the
// serving core, ServeMux, promhttp and http.ServeContent all are.
//
// h1 keeps the standard handler interface and owns only the connection.
// On Linux a TCP listener's connections are tasks of event loops, one loop
// per GOMAXPROCS (package evloop): a connection waiting for a request, or a
// request held on a playlist (evloop.Await), yields to its loop instead of
// parking a goroutine, and the loop resumes it when epoll reports its
// socket or the awaited channel closes. That spares the scheduler's and
// the poller's share of each wake-up, about 5 % of the edge's CPU per part
// (bench/README.md). A handler only runs on the loop where Server.OnLoop
// says it blocks on nothing else; every other request runs detached, on a
// goroutine of its own, until its answer is out. Server.Goroutines, and
// other listeners and systems, give each connection a goroutine instead.
// In both models the Request, its URL and Header map, and the
// ResponseWriter are reused from request to request on a connection; the
// request target and header lines are strings from an intern table that
// all connections share (listeners of a broadcast repeat each other's
// requests), so parsing a request allocates nothing; headers and a body of
// known length leave in one write (writev when the body is large), and a
// short answer is sent inside the connection's next read, which then skips
// the recv that would find nothing (conn.readIdle); deadlines are only
// moved when they would otherwise fire early. Handlers must not keep the
// Request or ResponseWriter after they return (net/http forbids it too).
//
// What it leaves out: HTTP/2, TLS (terminate it in front, or use net/http),
// Hijack, trailers in responses, 1xx responses from handlers (ignored), and
// noticing a client that leaves while its request is held. A request's
// context is never cancelled (a Done channel shared by thousands of held
// requests would cost every wake-up a lock): a held request ends at its hold
// limit, or when the handler's own stop signal fires at shutdown, as the
// serving core's do.
package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/amphi-live/amphi/internal/evloop"
)

// Server serves HTTP/1.0 and HTTP/1.1 on listeners with Handler.
type Server struct {
	// Handler answers every request. Required.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request head once its first byte
	// has arrived. Default 5s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no request for
	// this long. Default 120s.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing a response when the handler set no write
	// deadline itself. There is no deadline over a whole request: holds are
	// long. Default 10s.
	WriteTimeout time.Duration
	// MaxHeaderBytes bounds a request head; larger ones get 431. Default 8 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// MaxConns caps concurrent connections: Accept waits while this many
	// are open. Zero means no cap.
	MaxConns int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Goroutines serves each connection on a goroutine of its own. By
	// default, on Linux and for TCP listeners, connections are tasks of
	// event loops instead, one loop per GOMAXPROCS (package evloop).
	Goroutines bool
	// EventLoops is the number of event loops; 0 means GOMAXPROCS.
	EventLoops int
	// OnLoop reports whether Handler answers r on the connection's event
	// loop: without blocking, except through evloop.Await, and calling
	// evloop.Detach with r's context before anything that may block.
	// Requests it refuses, and all requests when it is nil, run detached:
	// on a goroutine of their own until the answer is out.
	OnLoop func(r *http.Request) bool

	initOnce sync.Once
	intern   *internTable
	sem      chan struct{}
	quit     context.Context // done when Shutdown or Close begins
	quitNow  context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   atomic.Bool
	done      chan struct{} // closed when the last connection ends during shutdown

	loops    []*evloop.Loop // started by the first Serve that uses them
	loopErr  error
	loopStop func()
}

// ErrServerClosed is returned by Serve after Shutdown or Close. It is
// net/http's, so callers can treat both servers alike.
var ErrServerClosed = http.ErrServerClosed

const (
	defaultReadHeaderTimeout = 5 * time.Second
	defaultIdleTimeout       = 120 * time.Second
	defaultWriteTimeout      = 10 * time.Second
	defaultMaxHeaderBytes    = 8 << 10
	defaultMaxBodyBytes      = 1 << 20
)

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.ReadHeaderTimeout <= 0 {
			s.ReadHeaderTimeout = defaultReadHeaderTimeout
		}
		if s.IdleTimeout <= 0 {
			s.IdleTimeout = defaultIdleTimeout
		}
		if s.WriteTimeout <= 0 {
			s.WriteTimeout = defaultWriteTimeout
		}
		if s.MaxHeaderBytes <= 0 {
			s.MaxHeaderBytes = defaultMaxHeaderBytes
		}
		if s.MaxBodyBytes <= 0 {
			s.MaxBodyBytes = defaultMaxBodyBytes
		}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		if s.MaxConns > 0 {
			s.sem = make(chan struct{}, s.MaxConns)
		}
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.done = make(chan struct{})
		s.quit, s.quitNow = context.WithCancel(context.Background())
		s.intern = newInternTable()
	})
}

// Serve accepts connections on ln until Shutdown or Close, and then returns
// ErrServerClosed. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("h1: Server.Handler is required")
	}
	s.init()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	rc := s.loopListener(ln)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	if rc != nil {
		return s.serveLoops(rc)
	}

	var backoff time.Duration
	for {
		if !s.acquire() {
			return ErrServerClosed
		}
		nc, err := ln.Accept()
		if err != nil {
			s.release()
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				s.pause(err, &backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := newConn(s, nc)
		if !s.track(c) {
			nc.Close()
			s.release()
			return ErrServerClosed
		}
		go c.serve()
	}
}

// loopListener returns ln's raw connection when its connections are to be
// served on event loops, starting the loops the first time; nil: serve on
// goroutines. Called with s.mu held.
func (s *Server) loopListener(ln net.Listener) syscall.RawConn {
	tl, ok := ln.(*net.TCPListener)
	if !ok || s.Goroutines || !loopsAvailable {
		return nil
	}
	if s.loops == nil && s.loopErr == nil {
		n := s.EventLoops
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		if s.loopErr = s.startLoops(n); s.loopErr != nil {
			s.Logger.Warn("h1: no event loops; serving on goroutines", "err", s.loopErr)
		}
	}
	if s.loopErr != nil {
		return nil
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

func (s *Server) onLoop(r *http.Request) bool { return s.OnLoop != nil && s.OnLoop(r) }

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// acquire takes a connection slot when MaxConns is set; false once the
// server is closing.
func (s *Server) acquire() bool {
	if s.sem == nil {
		return true
	}
	select {
	case s.sem <- struct{}{}:
		return true
	case <-s.quit.Done():
		return false
	}
}

// pause waits after an accept that failed for want of resources (EMFILE
// and friends), as net/http does, instead of spinning or giving up.
func (s *Server) pause(err error, backoff *time.Duration) {
	*backoff = min(max(2**backoff, 5*time.Millisecond), time.Second)
	s.Logger.Warn("accept failed; retrying", "err", err, "in", *backoff)
	time.Sleep(*backoff)
}

func (s *Server) release() {
	if s.sem != nil {
		<-s.sem
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.closing.Load() && len(s.conns) == 0 {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
	}
	s.mu.Unlock()
	s.release()
}

// Shutdown stops accepting, closes idle connections, and waits until every
// request in flight has been answered (their connections then close) or ctx
// ends, when it returns ctx's error. Release held requests first: Shutdown
// does not interrupt handlers.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.beginClose()
	// A connection may turn idle after the first pass: sweep until done.
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s.closeIdle()
		select {
		case <-s.done:
			s.mu.Lock()
			s.stopLoopsLocked()
			s.mu.Unlock()
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	s.init()
	s.beginClose()
	s.mu.Lock()
	for c := range s.conns {
		c.abort()
	}
	s.stopLoopsLocked()
	s.mu.Unlock()
	return nil
}

// stopLoopsLocked ends the event loops: tasks still waiting on one get
// evloop.ErrClosed and end. Called with s.mu held.
func (s *Server) stopLoopsLocked() {
	if s.loopStop != nil {
		s.loopStop()
	}
}

func (s *Server) beginClose() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Swap(true) {
		return
	}
	s.quitNow()
	for ln := range s.listeners {
		ln.Close()
	}
	if len(s.conns) == 0 {
		close(s.done)
	}
}

func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			// The connection's goroutine or task sees the read fail and
			// exits.
			c.abort()
		}
	}
}
