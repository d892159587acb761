//go:build !linux

package evloop

import (
	"context"
	"errors"
	"time"
)

// Available reports whether loops run here: not without epoll.
const Available = false

// Loop is Linux's; New fails elsewhere.
type Loop struct{}

// Task is Linux's; no task exists elsewhere.
type Task struct{}

// New fails: no loops here.
func New(context.Context) (*Loop, error) {
	return nil, errors.New("evloop: no event loops on this system")
}

func (*Loop) Add(func(*Task)) bool                 { return false }
func (*Loop) Run()                                 {}
func (*Loop) Spawn(func(*Task)) *Task              { return nil }
func (*Loop) Register(int) error                   { return errors.ErrUnsupported }
func (*Loop) Forget(int)                           {}
func (*Loop) Current() *Task                       { return nil }
func (*Task) Loop() *Loop                          { return nil }
func (*Task) Detached() bool                       { return true }
func (*Task) WaitIO(int, bool, int64) error        { return ErrClosed }
func (*Task) Sleep(d time.Duration)                { time.Sleep(d) }
func (*Task) Park() error                          { return ErrClosed }
func (*Task) Unpark()                              {}
func (*Task) Detach()                              {}
func (*Task) Recv(int, []byte, int64) (int, error) { return 0, ErrClosed }
func (*Task) Send(int, []byte, int64) (int, error) { return 0, ErrClosed }
func (*Task) Attach() bool                         { return false }

// Await blocks until ch is closed.
func (*Task) Await(ch <-chan struct{}) error {
	<-ch
	return nil
}
