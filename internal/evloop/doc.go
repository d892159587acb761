// Package evloop runs coroutines (iter.Pull) on one goroutine over the
// sockets of an epoll set, the way event-driven servers and load generators
// (nginx, wrk, h2load) run their connections, while the code of each
// connection stays straight-line Go.
//
// Why: with a goroutine per connection, each wait parks the goroutine in
// Go's poller and each readiness makes the scheduler find it, queue it and
// switch to it. A task of a Loop that has to wait yields instead, and the
// loop resumes it directly when epoll reports its socket: a coroutine switch
// costs about a quarter of a goroutine hand-off through a channel (111
// against 403 ns here), and skips the poller's bookkeeping. The load
// generator (internal/loadtest) runs its listeners on loops, and h1 its
// server connections.
//
// A task may only block by waiting through its Task: WaitIO for its socket,
// Await for a channel to close, Sleep, Park. Code that can block on anything
// else (a lock held across I/O, an upstream fetch, a channel send) calls
// Detach first: the task then runs on a goroutine of its own, where every
// wait blocks as usual, until it calls Attach. Detach and Await take a
// context, so code that serves both tasks and goroutines (an http.Handler)
// finds its task, or none, there (NewContext, FromContext).
//
// Loops are Linux's (epoll); elsewhere Available is false, New fails and
// FromContext finds no task.
package evloop

import (
	"context"
	"errors"
)

// ErrClosed is returned by a task's waits once its loop is closing.
var ErrClosed = errors.New("event loop closed")

type ctxKey struct{}

// taskCtx carries a task. It is a type of its own, not context.WithValue,
// so that FromContext is one type check on the hot path.
type taskCtx struct {
	context.Context
	t *Task
}

func (c *taskCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return c.t
	}
	return c.Context.Value(key)
}

// NewContext returns a context under parent that carries t.
func NewContext(parent context.Context, t *Task) context.Context {
	return &taskCtx{Context: parent, t: t}
}

// FromContext returns the task ctx carries, or nil.
func FromContext(ctx context.Context) *Task {
	if c, ok := ctx.(*taskCtx); ok {
		return c.t
	}
	t, _ := ctx.Value(ctxKey{}).(*Task)
	return t
}

// Await waits until ch is closed: through the task of ctx when there is
// one, else by blocking on ch. It fails with ErrClosed when the task's loop
// closes first.
func Await(ctx context.Context, ch <-chan struct{}) error {
	if t := FromContext(ctx); t != nil {
		return t.Await(ch)
	}
	<-ch
	return nil
}

// Detach moves the task of ctx, if any, off its loop, so that the caller
// may block (see Task.Detach).
func Detach(ctx context.Context) {
	if t := FromContext(ctx); t != nil {
		t.Detach()
	}
}
