package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
)

// script lets the demo use the testbed's testing.TB helpers (Boot,
// StartMariaDB, StartHAProxy, …) outside `go test`. Log goes to the
// story's detail stream, Fatal aborts the story through a panic that run
// recovers, and Cleanup runs the registered functions in reverse order
// when the story ends. The embedded testing.TB is nil: a helper that
// calls a method not implemented here panics loudly instead of
// misbehaving quietly.
type script struct {
	testing.TB
	ctx      context.Context
	out      io.Writer
	cleanups []func()
	failed   bool
}

// abort is the panic value of Fatal/FailNow/Skip.
type abort struct{ msg string }

func (s *script) Helper()                           {}
func (s *script) Name() string                      { return "demo" }
func (s *script) Context() context.Context          { return s.ctx }
func (s *script) Output() io.Writer                 { return s.out }
func (s *script) Cleanup(f func())                  { s.cleanups = append(s.cleanups, f) }
func (s *script) Log(args ...any)                   { fmt.Fprintln(s.out, append([]any{"    ·"}, args...)...) }
func (s *script) Logf(format string, args ...any)   { fmt.Fprintf(s.out, "    · "+format+"\n", args...) }
func (s *script) Error(args ...any)                 { s.Log(args...); s.failed = true }
func (s *script) Errorf(format string, args ...any) { s.Logf(format, args...); s.failed = true }
func (s *script) Fail()                             { s.failed = true }
func (s *script) Failed() bool                      { return s.failed }
func (s *script) FailNow()                          { s.failed = true; panic(abort{"failed"}) }
func (s *script) Fatal(args ...any)                 { s.failed = true; panic(abort{fmt.Sprint(args...)}) }
func (s *script) Fatalf(format string, args ...any) {
	s.failed = true
	panic(abort{fmt.Sprintf(format, args...)})
}
func (s *script) Skip(args ...any) { panic(abort{"skipped: " + fmt.Sprint(args...)}) }
func (s *script) SkipNow()         { panic(abort{"skipped"}) }
func (s *script) Skipf(format string, args ...any) {
	panic(abort{"skipped: " + fmt.Sprintf(format, args...)})
}
func (s *script) Skipped() bool { return false }
func (s *script) TempDir() string {
	d, err := os.MkdirTemp("", "haguard-demo-")
	if err != nil {
		s.Fatalf("temp dir: %v", err)
	}
	s.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// cleanup runs the registered cleanups, last first; each one may abort
// without stopping the others.
func (s *script) cleanup() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Fprintf(s.out, "    · cleanup: %v\n", r)
					s.failed = true
				}
			}()
			s.cleanups[i]()
		}()
	}
	s.cleanups = nil
}
