package sweep

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/procs"
)

// fakeScanner counts sweeps; when gate is set, each sweep waits for it.
type fakeScanner struct {
	mu      sync.Mutex
	n       int
	report  procs.Report
	err     error
	started chan struct{}
	gate    chan struct{}
}

func (f *fakeScanner) Sweep(ctx context.Context) (procs.Report, error) {
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.report, f.err
}

func (f *fakeScanner) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

type fakeKiller struct {
	mu    sync.Mutex
	calls []procs.Report
}

func (k *fakeKiller) KillGhosts(_ context.Context, r procs.Report) []procs.KillResult {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, r)
	var out []procs.KillResult
	for _, p := range r.Of(procs.Ghost) {
		out = append(out, procs.KillResult{PID: p.PID, Outcome: procs.Terminated})
	}
	return out
}

func ghostReport() procs.Report {
	return procs.Report{Unit: "haproxy.service", Processes: []procs.Process{
		{PID: 1, Class: procs.Current}, {PID: 2, Class: procs.Ghost},
	}, Counts: procs.Counts{Current: 1, Ghost: 1}}
}

// Triggers that arrive while a sweep runs coalesce into exactly one more.
func TestTriggerCoalesces(t *testing.T) {
	f := &fakeScanner{started: make(chan struct{}), gate: make(chan struct{})}
	s := New(f, nil, Options{Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	<-f.started // the start sweep is running and blocked
	for range 5 {
		s.Trigger()
	}
	f.gate <- struct{}{} // finish the start sweep
	<-f.started          // the one coalesced trigger sweep
	f.gate <- struct{}{}
	// No third sweep may start: a probe sweep through Now proves the
	// loop is idle (it would otherwise be the next to start).
	go func() { <-f.started; f.gate <- struct{}{} }()
	res := s.Now(ctx)
	if res.Cause != "now" || f.count() != 3 {
		t.Fatalf("sweeps %d (want start + one trigger + now), last cause %s", f.count(), res.Cause)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
}

func TestIntervalSweepsAndLast(t *testing.T) {
	f := &fakeScanner{report: procs.Report{Unit: "haproxy.service", Processes: []procs.Process{{PID: 1, Class: procs.Current}}, Counts: procs.Counts{Current: 1}}}
	results := make(chan Result, 16)
	s := New(f, nil, Options{Interval: time.Millisecond, OnResult: func(r Result) {
		select {
		case results <- r:
		default:
		}
	}})
	if _, ok := s.Last(); ok {
		t.Fatal("Last before any sweep")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	first := <-results
	second := <-results
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if first.Cause != "start" || second.Cause != "interval" || first.Err != nil {
		t.Fatalf("causes %s, %s", first.Cause, second.Cause)
	}
	last, ok := s.Last()
	if !ok || last.Report.Counts.Current != 1 || last.Kills != nil {
		t.Fatalf("Last: %+v %v", last, ok)
	}
}

func TestKillOnlyWhenGhostsAndConfigured(t *testing.T) {
	ctx := context.Background()
	k := &fakeKiller{}
	f := &fakeScanner{report: ghostReport()}

	res := New(f, nil, Options{Interval: time.Hour}).Now(ctx)
	if res.Kills != nil {
		t.Fatal("killed without a killer")
	}
	res = New(f, k, Options{Interval: time.Hour}).Now(ctx)
	if len(res.Kills) != 1 || res.Kills[0].PID != 2 || res.KillFailed() {
		t.Fatalf("kills %+v", res.Kills)
	}
	clean := &fakeScanner{report: procs.Report{Counts: procs.Counts{Current: 2}}}
	New(clean, k, Options{Interval: time.Hour}).Now(ctx)
	if len(k.calls) != 1 {
		t.Fatalf("killer called for a clean report: %d calls", len(k.calls))
	}
	failing := &fakeScanner{report: ghostReport(), err: errors.New("no anchor")}
	res = New(failing, k, Options{Interval: time.Hour}).Now(ctx)
	if res.Err == nil || len(k.calls) != 1 {
		t.Fatalf("a failed sweep must not kill: %+v, %d calls", res, len(k.calls))
	}
	if !(Result{Kills: []procs.KillResult{{Outcome: procs.Failed}}}).KillFailed() {
		t.Fatal("KillFailed")
	}
}
