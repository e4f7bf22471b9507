package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/generations"
	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/internal/metricstest"
	"github.com/haguard/haguard/internal/testbed"
)

// genBox is haguard serve in the box with a generations block, and the
// held connections that keep old generations draining.
type genBox struct {
	*serveBox
}

// newGenBox starts serve with a 1 s sweep, no reload interval, and gens
// as haguard.yaml's generations block.
func newGenBox(t *testing.T, gens string) *genBox {
	t.Helper()
	b := newServeBoxYAML(t, func(y string) string {
		y = strings.Replace(y, "sweep:\n  interval: 10s\n", "sweep:\n  interval: 1s\n", 1)
		return y + "generations:\n" + gens
	}, "")
	return &genBox{b}
}

func (b *genBox) showProc(t *testing.T) *master.ShowProc {
	t.Helper()
	return (&ghostBox{s: b.s}).showProc(t)
}

// reload is `systemctl reload haproxy` (not through haguard) and the
// wait for the new generation.
func (b *genBox) reload(t *testing.T) *master.ShowProc {
	t.Helper()
	return (&ghostBox{s: b.s}).reload(t)
}

// keepBusy writes to c and reads the echo back every 200 ms until t ends
// or the connection closes (then closed is set): a session that is never
// idle.
func keepBusy(t *testing.T, c net.Conn, closed *atomic.Bool) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write([]byte("x")); err != nil {
				closed.Store(true)
				return
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				closed.Store(true)
				return
			}
		}
	}()
}

// steps reads state_dir/generations.log.
func (b *genBox) steps(t *testing.T) []generations.Step {
	t.Helper()
	f, err := os.Open(filepath.Join(b.state, "generations.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []generations.Step
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s generations.Step
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("generations.log line %q: %v", sc.Text(), err)
		}
		out = append(out, s)
	}
	return out
}

func alive(pid int32, sp *master.ShowProc) bool {
	for _, w := range append(slices.Clone(sp.Workers), sp.OldWorkers...) {
		if w.PID == pid {
			return true
		}
	}
	return false
}

// ghostsGenerations is GET /v1/ghosts?fresh=1's generations.
func (b *genBox) ghostsGenerations(t *testing.T) generations.Report {
	t.Helper()
	code, _, data := b.do(t, "GET", "/v1/ghosts?fresh=1", nil, nil)
	var body struct {
		Generations *generations.Report `json:"generations"`
	}
	if code != 200 || json.Unmarshal(data, &body) != nil || body.Generations == nil {
		t.Fatalf("GET /v1/ghosts?fresh=1: %d %s", code, data)
	}
	return *body.Generations
}

// threeHeldReloads holds a busy connection, reloads, three times: three
// draining generations (0, 1, 2) and the current one (3). It returns the
// draining workers by generation and the current worker.
func (b *genBox) threeHeldReloads(t *testing.T) (old map[int]int32, cur int32, closed []*atomic.Bool) {
	t.Helper()
	old = map[int]int32{}
	for i := range 3 {
		before := b.showProc(t)
		c := b.s.HoldConnection(t, b.listen)
		cl := &atomic.Bool{}
		keepBusy(t, c, cl)
		closed = append(closed, cl)
		b.reload(t)
		old[i] = before.Workers[0].PID
	}
	sp := b.showProc(t)
	if len(sp.OldWorkers) != 3 || len(sp.Workers) != 1 {
		t.Fatalf("after three held reloads: %+v", sp)
	}
	return old, sp.Workers[0].PID, closed
}

// Three reloads, each with a held (busy) connection, and at most 2
// draining generations: the oldest is escalated step by step (report,
// shutdown-sessions, soft-stop, terminate) and exits; the two newer ones
// and the current generation are untouched, and their connections work.
func TestGenerationsEscalateOldestOverCount(t *testing.T) {
	b := newGenBox(t, "  max_draining: 2\n  max_age: unlimited\n  enforce: true\n  grace: {sessions: 3s, soft_stop: 1s, terminate: 1s}\n")
	old, cur, closed := b.threeHeldReloads(t)
	deadline := time.Now().Add(45 * time.Second)
	for {
		sp := b.showProc(t)
		if !alive(old[0], sp) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the oldest generation (pid %d) still runs: %+v; steps %+v\n%s", old[0], sp, b.steps(t), b.journal(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the sweeps after its exit change nothing else
	steps := b.steps(t)
	var names []string
	for _, s := range steps {
		names = append(names, s.Step)
		if s.Generation != 0 || !slices.Equal(s.PIDs, []int32{old[0]}) || !slices.Contains(s.Over, generations.OverCount) {
			t.Errorf("step %+v: want only generation 0 (pid %d), over count", s, old[0])
		}
	}
	if !slices.Equal(names, generations.Steps) {
		t.Fatalf("steps = %v, want %v", names, generations.Steps)
	}
	if len(steps[0].Holders) != 1 || steps[1].Closed != 0 {
		t.Errorf("report holders %v (want the one held connection), session step closed %d (want 0: it is busy); steps %+v\n%s", steps[0].Holders, steps[1].Closed, steps, b.journal(t))
	}
	sp := b.showProc(t)
	for _, pid := range []int32{old[1], old[2], cur} {
		if !alive(pid, sp) {
			t.Errorf("pid %d (a newer generation or the current one) is gone: %+v", pid, sp)
		}
	}
	if !closed[0].Load() {
		t.Error("the oldest generation's connection still works after SIGTERM")
	}
	for i := 1; i < 3; i++ {
		if closed[i].Load() {
			t.Errorf("held connection %d of an untouched generation was closed", i)
		}
	}
	_, _, m := b.do(t, "GET", "/metrics", nil, nil)
	fams := metricstest.Parse(t, m)
	for _, st := range generations.Steps {
		if v := metricstest.Value(fams, "haguard_generation_escalations_total", "step", st); v != 1 {
			t.Errorf("haguard_generation_escalations_total{step=%q} = %v, want 1", st, v)
		}
	}
	if v := metricstest.Value(fams, "haguard_generations", "state", "draining"); v != 2 {
		t.Errorf("haguard_generations{state=draining} = %v, want 2", v)
	}
}

// A generation over the age limit whose held connection has gone idle is
// closed at the session step: haproxy's own `shutdown session`, before
// any signal.
func TestGenerationsIdleOverAgeClosedAtSessionStep(t *testing.T) {
	b := newGenBox(t, "  max_draining: 0\n  max_age: 3s\n  enforce: true\n  grace: {sessions: 2s, soft_stop: 1m, terminate: 1m}\n")
	before := b.showProc(t)
	c := b.s.HoldConnection(t, b.listen) // idle from here on
	b.reload(t)
	pid := before.Workers[0].PID
	start := time.Now()
	for alive(pid, b.showProc(t)) {
		if time.Since(start) > 40*time.Second {
			t.Fatalf("the idle generation (pid %d) still runs; steps %+v\n%s", pid, b.steps(t), b.journal(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	var names []string
	for _, s := range b.steps(t) {
		names = append(names, s.Step)
		if s.Step == generations.StepSessions && s.Closed != 1 {
			t.Errorf("session step closed %d sessions, want the 1 idle one; it left %q", s.Closed, s.Left)
		}
	}
	if !slices.Equal(names, []string{generations.StepReport, generations.StepSessions}) {
		t.Fatalf("steps = %v, want report then shutdown-sessions and no signal", names)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the held connection after the session step: %v, want closed", err)
	}
}

// With enforcement off the same pile-up is only reported: /v1/ghosts
// names the generation over the limit, the metrics count it, no step is
// taken and every worker keeps running.
func TestGenerationsReportOnlyWhenNotEnforced(t *testing.T) {
	b := newGenBox(t, "  max_draining: 2\n  max_age: unlimited\n  enforce: false\n  grace: {sessions: 0s, soft_stop: 0s, terminate: 0s}\n")
	old, cur, closed := b.threeHeldReloads(t)
	time.Sleep(4 * time.Second) // several sweeps
	rep := b.ghostsGenerations(t)
	if rep.Enforce || rep.Draining != 3 || rep.Over != 1 || len(rep.Generations) != 4 {
		t.Fatalf("generations report: %+v", rep)
	}
	g0 := rep.Generations[0]
	if !slices.Equal(g0.PIDs, []int32{old[0]}) || !slices.Equal(g0.Over, []string{generations.OverCount}) || g0.Escalation != nil || g0.RSSBytes <= 0 {
		t.Fatalf("oldest generation: %+v, want pid %d over count, RSS read, not escalated", g0, old[0])
	}
	if last := rep.Generations[3]; last.State != generations.Current || !slices.Equal(last.PIDs, []int32{cur}) || len(last.Over) != 0 {
		t.Fatalf("current generation: %+v", last)
	}
	_, _, m := b.do(t, "GET", "/metrics", nil, nil)
	fams := metricstest.Parse(t, m)
	if v := metricstest.Value(fams, "haguard_generations", "state", "draining"); v != 3 {
		t.Errorf("haguard_generations{state=draining} = %v, want 3", v)
	}
	for _, st := range generations.Steps {
		if v := metricstest.Value(fams, "haguard_generation_escalations_total", "step", st); v != 0 {
			t.Errorf("escalations{step=%q} = %v with enforcement off", st, v)
		}
	}
	if f := fams["haguard_generations_over_limit"]; f == nil || f.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("haguard_generations_over_limit = %v, want 1", f)
	}
	if f := fams["haguard_oldest_draining_generation_age_seconds"]; f == nil || f.GetMetric()[0].GetGauge().GetValue() < 4 {
		t.Errorf("haguard_oldest_draining_generation_age_seconds = %v, want >= 4", f)
	}
	if s := b.steps(t); len(s) != 0 {
		t.Errorf("steps taken with enforcement off: %+v", s)
	}
	// haguard status says the same.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, errOut, _ := b.s.Run(ctx, testbed.BuildHaguard(t), "--config-file", filepath.Join(b.s.Dir(), "haguard.yaml"), "status", "--format", "json")
	var st struct {
		Generations *generations.Report `json:"generations"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Generations == nil || st.Generations.Over != 1 ||
		!slices.Equal(st.Generations.Generations[0].Over, []string{generations.OverCount}) {
		t.Errorf("haguard status --format json: %v %+v\n%s\n%s", err, st.Generations, out, errOut)
	}
	human, _, _ := b.s.Run(ctx, testbed.BuildHaguard(t), "--config-file", filepath.Join(b.s.Dir(), "haguard.yaml"), "status")
	if !strings.Contains(human, "1 of 3 draining generations over the generations limits (generations.enforce is off: reported only)") {
		t.Errorf("haguard status does not report the generation over the limit:\n%s", human)
	}
	sp := b.showProc(t)
	for _, pid := range []int32{old[0], old[1], old[2], cur} {
		if !alive(pid, sp) {
			t.Errorf("pid %d gone with enforcement off", pid)
		}
	}
	for i, cl := range closed {
		if cl.Load() {
			t.Errorf("held connection %d closed with enforcement off", i)
		}
	}
}
