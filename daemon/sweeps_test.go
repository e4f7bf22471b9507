package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/internal/metricstest"
)

// fakeScanner returns a fixed table with one ghost, or fail.
type fakeScanner struct {
	mu     sync.Mutex
	sweeps int
	fail   error
	swept  chan struct{} // gets a value after each sweep, if set
}

func (f *fakeScanner) Sweep(context.Context) (procs.Report, error) {
	f.mu.Lock()
	f.sweeps++
	fail := f.fail
	f.mu.Unlock()
	if f.swept != nil {
		defer func() { f.swept <- struct{}{} }()
	}
	if fail != nil {
		return procs.Report{}, fail
	}
	return procs.Report{Unit: "haproxy.service", Processes: []procs.Process{
		{PID: 10, Class: procs.Current}, {PID: 11, Class: procs.Current},
		{PID: 99, Class: procs.Ghost, Reason: "outside the unit's cgroup", Cmdline: "haproxy -f old.cfg"},
	}, Counts: procs.Counts{Current: 2, Ghost: 1}}, nil
}

type syncWriter struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func newTestSweeps(t *testing.T) (*sweeps, *api.Metrics, *syncWriter) {
	t.Helper()
	m := api.NewMetrics()
	logs := &syncWriter{}
	hash := func(context.Context) (string, error) { return strings.Repeat("c", 64), nil }
	return newSweeps(m, slog.New(slog.NewTextHandler(logs, nil)), hash), m, logs
}

func sweepCfg(interval time.Duration) config.Config {
	cfg := config.Default()
	cfg.Sweep.Interval = config.Duration(interval)
	return cfg
}

func TestSweepNowRecordsAndWarns(t *testing.T) {
	s, reg, logs := newTestSweeps(t)
	sc := &fakeScanner{}
	s.set(s.newSweeper(sc, nil, sweepCfg(time.Hour)))
	if _, ok := s.Last(); ok {
		t.Fatal("Last before any sweep")
	}
	r, err := s.SweepNow(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts["ghost"] != 1 || r.Counts["current"] != 2 || r.Counts["divergent"] != 0 || r.At.IsZero() {
		t.Fatalf("report %+v", r)
	}
	if last, ok := s.Last(); !ok || !last.At.Equal(r.At) {
		t.Fatalf("Last = %+v %v", last, ok)
	}
	if l := logs.String(); !strings.Contains(l, `level=WARN msg="ghost haproxy process"`) || !strings.Contains(l, "pid=99 class=ghost") {
		t.Fatalf("no warning for the ghost:\n%s", l)
	}
	got := gathered(t, reg)
	for name, want := range map[string]float64{
		`haguard_processes{class="current"}`:                            2,
		`haguard_processes{class="ghost"}`:                              1,
		`haguard_processes{class="divergent"}`:                          0,
		`haguard_config_info{sha256="` + strings.Repeat("c", 64) + `"}`: 1,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if got["haguard_last_sweep_timestamp_seconds"] != float64(r.At.UnixNano())/1e9 {
		t.Errorf("last sweep timestamp %v, want %v", got["haguard_last_sweep_timestamp_seconds"], r.At)
	}
	// A failing sweep is an error for SweepNow and keeps the last good one.
	sc.fail = errors.New("master socket: connection refused")
	if _, err := s.SweepNow(t.Context()); err == nil {
		t.Fatal("want the sweep error")
	}
	if last, _ := s.Last(); !last.At.Equal(r.At) {
		t.Fatal("a failed sweep replaced the last good one")
	}
}

func TestKillOffByDefault(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if killerFor(config.Default(), log) != nil {
		t.Fatal("sweep.kill_ghosts defaults to off, but a killer was built")
	}
	cfg := config.Default()
	cfg.Sweep.KillGhosts = true
	if killerFor(cfg, log) == nil {
		t.Fatal("sweep.kill_ghosts: true built no killer")
	}
}

// TestSwapRestartsTheSweeper: SIGHUP's new Sweeper takes over Run (it
// sweeps at once), and the old one stops.
func TestSwapRestartsTheSweeper(t *testing.T) {
	s, _, _ := newTestSweeps(t)
	first := &fakeScanner{swept: make(chan struct{}, 8)}
	second := &fakeScanner{swept: make(chan struct{}, 8)}
	s.set(s.newSweeper(first, nil, sweepCfg(time.Hour)))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-first.swept // the start-up sweep
	s.set(s.newSweeper(second, nil, sweepCfg(time.Hour)))
	<-second.swept // the new Sweeper's start-up sweep
	s.Trigger()    // goes to the new one
	<-second.swept
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if first.sweeps != 1 || second.sweeps != 2 {
		t.Fatalf("sweeps: old %d (want 1), new %d (want 2)", first.sweeps, second.sweeps)
	}
}

// gathered flattens gauges to `name{label="value"}` -> value.
func gathered(t *testing.T, m *api.Metrics) map[string]float64 {
	t.Helper()
	mfs := metricstest.Gather(t, m)
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
