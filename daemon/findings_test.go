package daemon

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/internal/metricstest"
)

// haguard_findings is the running config's: checked once per identity,
// again after SIGHUP, and left alone by a check that cannot run.
func TestRunningLintFollowsTheIdentity(t *testing.T) {
	m := api.NewMetrics()
	calls := 0
	var next map[string]int
	var fail error
	l := newRunningLint(m, slog.New(slog.DiscardHandler), func(context.Context) (map[string]int, error) {
		calls++
		return next, fail
	})
	errs := func() float64 {
		return metricstest.Value(metricstest.Gather(t, m), "haguard_findings", "severity", "error")
	}

	next = map[string]int{"error": 2, "warning": 1}
	l.follow("aaa")
	l.follow("aaa") // the same config: not checked again
	if calls != 1 || errs() != 2 {
		t.Fatalf("after two sweeps of one config: %d checks, error=%v; want 1 and 2", calls, errs())
	}
	next, fail = nil, errors.New("haproxy -c: no such file")
	l.follow("bbb")
	if calls != 2 || errs() != 2 {
		t.Fatalf("a failed check changed the metric: %d checks, error=%v", calls, errs())
	}
	next, fail = map[string]int{}, nil
	l.follow("bbb") // retried, since it failed
	if calls != 3 || errs() != 0 {
		t.Fatalf("the retry: %d checks, error=%v; want 3 and 0", calls, errs())
	}
	l.reset()
	l.follow("bbb")
	if calls != 4 {
		t.Fatalf("SIGHUP did not make the next sweep check again (%d checks)", calls)
	}
	l.follow("")
	if calls != 4 {
		t.Fatal("an unknown identity was checked")
	}
}
