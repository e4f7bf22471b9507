package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
)

// fakeSweeper returns a fixed table; block, when set, holds each sweep
// until a value arrives.
type fakeSweeper struct {
	mu     sync.Mutex
	sweeps int
	killed []int
	fail   error
	block  chan struct{}
	in     chan struct{}
}

func (f *fakeSweeper) Sweep(context.Context) (reload.SweepReport, error) {
	f.mu.Lock()
	f.sweeps++
	fail := f.fail
	f.mu.Unlock()
	if f.in != nil {
		f.in <- struct{}{}
	}
	if f.block != nil {
		<-f.block
	}
	if fail != nil {
		return reload.SweepReport{}, fail
	}
	return reload.SweepReport{Processes: []reload.Process{
		{PID: 10, Class: reload.ClassCurrent}, {PID: 11, Class: reload.ClassCurrent},
		{PID: 99, Class: reload.ClassGhost, Reason: "outside the unit's cgroup", Cmdline: "haproxy -f old.cfg"},
	}}, nil
}

func (f *fakeSweeper) Kill(_ context.Context, ps []reload.Process) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range ps {
		f.killed = append(f.killed, p.PID)
	}
	return nil
}

func (f *fakeSweeper) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.sweeps }

func newTestLoop(t *testing.T, sw *fakeSweeper, kill bool, interval time.Duration) (*sweepLoop, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	cfg := config.Default()
	cfg.Sweep.KillGhosts = kill
	cfg.Sweep.Interval = config.Duration(interval)
	var cur atomic.Pointer[pieces]
	cur.Store(&pieces{cfg: cfg, sweeper: sw})
	reg := prometheus.NewRegistry()
	m, err := api.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
	l := newSweepLoop(&cur, m, log)
	l.now = func() time.Time { return time.Unix(1800000000, 0) }
	return l, reg, &logs
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestSweepNowRecordsAndWarns(t *testing.T) {
	sw := &fakeSweeper{}
	l, _, logs := newTestLoop(t, sw, false, time.Hour)
	if _, ok := l.Last(); ok {
		t.Fatal("Last before any sweep")
	}
	r, err := l.SweepNow(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts["ghost"] != 1 || r.Counts["current"] != 2 {
		t.Fatalf("counts %v", r.Counts)
	}
	if last, ok := l.Last(); !ok || !last.At.Equal(r.At) {
		t.Fatalf("Last = %+v %v", last, ok)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN msg=\"ghost haproxy process\"") || !strings.Contains(l, "pid=99 class=ghost") {
		t.Fatalf("no warning for the ghost:\n%s", logs)
	}
	if len(sw.killed) != 0 {
		t.Fatal("auto-kill is off by default but a ghost was killed")
	}
	// A failing sweep is logged once, not on every tick.
	sw.fail = errors.New("master socket: connection refused")
	for range 3 {
		if _, err := l.SweepNow(t.Context()); err == nil {
			t.Fatal("want the sweep error")
		}
	}
	if n := strings.Count(logs.String(), "sweep failed"); n != 1 {
		t.Fatalf("sweep failure logged %d times", n)
	}
}

func TestSweepKillsOnlyWhenEnabled(t *testing.T) {
	sw := &fakeSweeper{}
	l, _, _ := newTestLoop(t, sw, true, time.Hour)
	if _, err := l.SweepNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(sw.killed) != 1 || sw.killed[0] != 99 {
		t.Fatalf("killed %v, want [99]", sw.killed)
	}
}

// TestTriggersCoalesce: triggers that arrive while a sweep runs cause one
// more sweep, not one each.
func TestTriggersCoalesce(t *testing.T) {
	sw := &fakeSweeper{block: make(chan struct{}), in: make(chan struct{})}
	l, reg, _ := newTestLoop(t, sw, false, time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	<-sw.in // the start-up sweep is running
	for range 50 {
		l.Trigger()
	}
	sw.block <- struct{}{} // finish it
	<-sw.in                // exactly one more starts
	sw.block <- struct{}{}
	// No third sweep is pending: the next one would come from the hourly
	// ticker. Cancel while the loop waits.
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := sw.count(); n != 2 {
		t.Fatalf("%d sweeps for 50 coalesced triggers, want 2", n)
	}
	got := gathered(t, reg)
	for name, want := range map[string]float64{
		"haguard_last_sweep_timestamp_seconds": 1.8e9,
		`haguard_processes{class="current"}`:   2,
		`haguard_processes{class="ghost"}`:     1,
		`haguard_processes{class="divergent"}`: 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}

// gathered flattens gauges to "name{label="value"}" -> value.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetGauge() == nil {
				continue
			}
			name := mf.GetName()
			for _, lp := range m.GetLabel() {
				name += fmt.Sprintf("{%s=%q}", lp.GetName(), lp.GetValue())
			}
			out[name] = m.GetGauge().GetValue()
		}
	}
	return out
}
