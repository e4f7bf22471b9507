// Package async runs work beside the goroutine that needs its result,
// and carries a panic in that work back to it.
//
// haguard's daemon recovers a transaction that panics (the job fails,
// and the reload's journal lets the next run recover the host). That
// holds only for panics in the transaction's own goroutine: one left in a
// goroutine it started would end the process. Work started with Go
// panics in whoever waits for it instead.
package async

import (
	"fmt"
	"runtime/debug"
)

// Task is work running in its own goroutine. Wait may be called more
// than once, from one goroutine at a time.
type Task[T any] struct {
	done     chan struct{}
	v        T
	panicked *PanicError
}

// PanicError is a panic carried from a Task to its Wait: the value
// recovered and the stack where it happened.
type PanicError struct {
	Recovered any
	Stack     []byte
}

func (p *PanicError) Error() string {
	return fmt.Sprintf("%v\n\n%s", p.Recovered, p.Stack)
}

// Go starts fn in its own goroutine.
func Go[T any](fn func() T) *Task[T] {
	t := &Task[T]{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		defer func() {
			if p := recover(); p != nil {
				t.panicked = &PanicError{Recovered: p, Stack: debug.Stack()}
			}
		}()
		t.v = fn()
	}()
	return t
}

// Wait returns fn's value once it is done; if fn panicked, Wait panics
// with a *PanicError.
func (t *Task[T]) Wait() T {
	<-t.done
	if t.panicked != nil {
		panic(t.panicked)
	}
	return t.v
}
