package runtime

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCLI answers show proc with one current and one old worker, and
// show sess with sess[pid] sessions on be/s1.
type fakeCLI struct {
	mu   sync.Mutex
	sess map[string]int
}

func (f *fakeCLI) Command(ctx context.Context, cmd string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if cmd == "show proc" {
		return "#<PID> <type> <reloads> <uptime> <version>\n1 master 1 [failed: 0] 0d00h00m06s 2.6.12\n# workers\n20 worker 0 0d00h00m04s 2.6.12\n# old workers\n10 worker 1 0d00h00m06s 2.6.12\n", nil
	}
	pid, rest, _ := strings.Cut(strings.TrimPrefix(cmd, "@!"), " ")
	if rest != "show sess" {
		return "Unknown command\n", nil
	}
	f.mu.Lock()
	n := f.sess[pid]
	f.mu.Unlock()
	return strings.Repeat("0x1: proto=tcpv4 fe=fe be=be srv=s1 ts=00\n", n), nil
}

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
