package runtime

import (
	"context"
	"testing"
	"time"
)

func TestWaitDrained(t *testing.T) {
	cli := &fakeCLI{sess: map[string]int{"10": 2, "20": 1}}
	rt := New(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ps, total, done := rt.WaitDrained(ctx, "be", "s1", 20*time.Millisecond, nil)
	if done || total != 3 || len(ps) != 2 || ps[1].PID != 10 || ps[1].Sessions != 2 {
		t.Fatalf("held: done %v total %d %+v, want the last count (3) and not done", done, total, ps)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		cli.mu.Lock()
		cli.sess = map[string]int{}
		cli.mu.Unlock()
	}()
	seen := 0
	_, total, done = rt.WaitDrained(context.Background(), "be", "s1", 20*time.Millisecond, func([]ProcSessions, int) { seen++ })
	if !done || total != 0 || seen < 2 {
		t.Fatalf("closed: done %v total %d seen %d", done, total, seen)
	}
}
