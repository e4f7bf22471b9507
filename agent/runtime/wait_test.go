package runtime

import (
	"context"
	"testing"
	"time"
)

// The counts it returns are the last poll's; it ends when every process
// has drained, or with the context. The sessions change from inside the
// seen callback, at a known poll, so no timing decides the outcome.
func TestWaitDrained(t *testing.T) {
	cli := &fakeCLI{sess: map[string]int{"10": 2, "20": 1}}
	rt := New(cli)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	polls := 0
	ps, total, done := rt.WaitDrained(ctx, "be", "s1", time.Millisecond, func([]ProcSessions, int) {
		if polls++; polls == 3 {
			cancel()
		}
	})
	if done || total != 3 || len(ps) != 2 || ps[1].PID != 10 || ps[1].Sessions != 2 {
		t.Fatalf("held: done %v total %d %+v, want the last count (3) and not done", done, total, ps)
	}
	seen := 0
	_, total, done = rt.WaitDrained(context.Background(), "be", "s1", time.Millisecond, func([]ProcSessions, int) {
		if seen++; seen == 2 {
			cli.mu.Lock()
			cli.sess = map[string]int{}
			cli.mu.Unlock()
		}
	})
	if !done || total != 0 || seen != 3 {
		t.Fatalf("closed: done %v total %d seen %d, want drained at the third poll", done, total, seen)
	}
}
