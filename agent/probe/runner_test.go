package probe

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAttemptsFor(t *testing.T) {
	three := func(string) int { return 3 }
	eight := func(string) int { return 8 }
	cases := []struct {
		name string
		t    Target
		opts Options
		want int
	}{
		{"default", Target{Kind: KindTCP}, Options{}, 20},
		{"few listeners", Target{Kind: KindTCP}, Options{ListenerCount: three}, 20},
		{"many listeners", Target{Kind: KindTCP}, Options{ListenerCount: eight}, 32},
		{"options count", Target{Kind: KindTCP}, Options{Count: 5, ListenerCount: eight}, 5},
		{"target count", Target{Kind: KindTCP, Count: 2}, Options{Count: 5}, 2},
		{"idle-hold: one per listener", Target{Kind: KindIdleHold}, Options{ListenerCount: three}, 3},
		{"idle-hold: at least one", Target{Kind: KindIdleHold}, Options{ListenerCount: func(string) int { return 0 }}, 1},
	}
	for _, tc := range cases {
		if got := AttemptsFor(tc.t, tc.opts); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestRunMixAndJSONContract(t *testing.T) {
	good := startFakeMySQL(t, fakeHandshake)
	full := startFakeMySQL(t, fakeTooMany)
	// A prober that alternates: the runner must count each attempt on its own.
	var n atomic.Int32
	flaky := func(ctx context.Context, tg Target, r *Result, l *slog.Logger) error {
		if n.Add(1)%2 == 0 {
			return fail(ReasonReset, errors.New("boom"))
		}
		return nil
	}
	probers := Probers()
	probers["flaky"] = flaky
	rep := Run(context.Background(), []Target{
		{Address: good, Kind: KindMySQL},
		{Address: full, Kind: KindMySQL, Count: 3},
		{Address: "127.0.0.1:1", Kind: "flaky", Count: 10},
		{Address: good, Kind: "nonsense", Count: 1},
	}, Options{Concurrency: 4, Timeout: time.Second, Probers: probers})

	if rep.OK {
		t.Fatal("report OK with failures")
	}
	want := []struct {
		total, ok, fail int
		errors          map[string]int
	}{
		{20, 20, 0, map[string]int{}},
		{3, 0, 3, map[string]int{"mysql error 1040": 3}},
		{10, 5, 5, map[string]int{ReasonReset: 5}},
		{1, 0, 1, map[string]int{ReasonUnknownKind: 1}},
	}
	for i, w := range want {
		tr := rep.Targets[i]
		if tr.AttemptsTotal != w.total || tr.OK != w.ok || tr.Fail != w.fail || len(tr.Attempts) != w.total {
			t.Errorf("target %d: total %d ok %d fail %d attempts %d, want %d/%d/%d", i, tr.AttemptsTotal, tr.OK, tr.Fail, len(tr.Attempts), w.total, w.ok, w.fail)
		}
		for k, v := range w.errors {
			if tr.Errors[k] != v {
				t.Errorf("target %d: errors = %v, want %v", i, tr.Errors, w.errors)
			}
		}
		if tr.LatencyMS.Max < tr.LatencyMS.P50 {
			t.Errorf("target %d: max %v < p50 %v", i, tr.LatencyMS.Max, tr.LatencyMS.P50)
		}
	}
	if v := rep.Targets[0].Attempts[0].ServerVersion; v != fakeVersion {
		t.Errorf("server version = %q", v)
	}

	// The JSON shape is the documented contract.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ok", "targets", "servers"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("report JSON lacks %q: %s", k, b)
		}
	}
	tr := doc["targets"].([]any)[1].(map[string]any)
	for _, k := range []string{"target", "kind", "attempts_total", "ok", "fail", "errors", "latency_ms", "attempts"} {
		if _, ok := tr[k]; !ok {
			t.Errorf("target JSON lacks %q", k)
		}
	}
	lat := tr["latency_ms"].(map[string]any)
	if _, ok := lat["p50"]; !ok {
		t.Errorf("latency_ms lacks p50: %v", lat)
	}
	at := tr["attempts"].([]any)[0].(map[string]any)
	for _, k := range []string{"target", "kind", "ok", "error", "latency_ms"} {
		if _, ok := at[k]; !ok {
			t.Errorf("attempt JSON lacks %q: %v", k, at)
		}
	}
	if !strings.Contains(at["error"].(string), "1040") {
		t.Errorf("attempt error = %v", at["error"])
	}
	if !strings.Contains(string(b), `"server_version":"`+fakeVersion+`"`) {
		t.Errorf("no server_version in %s", b)
	}
}

func TestRunBoundsConcurrency(t *testing.T) {
	var inflight, peak atomic.Int32
	slow := func(ctx context.Context, _ Target, _ *Result, _ *slog.Logger) error {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		select {
		case <-time.After(20 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	rep := Run(context.Background(), []Target{{Address: "a:1", Kind: "slow", Count: 12}, {Address: "b:1", Kind: "slow", Count: 12}},
		Options{Concurrency: 3, Probers: map[string]Prober{"slow": slow}})
	if !rep.OK {
		t.Fatalf("not OK: %+v", rep.Targets)
	}
	if p := peak.Load(); p > 3 || p < 1 {
		t.Fatalf("peak concurrency %d, want 1..3", p)
	}
}

// Lingering tcp attempts only wait: they have a pool WaitFactor times
// the concurrency, so a target's attempts linger together.
func TestRunLingeringAttemptsHaveTheirOwnPool(t *testing.T) {
	var inflight, peak atomic.Int32
	wait := func(ctx context.Context, _ Target, _ *Result, _ *slog.Logger) error {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		select {
		case <-time.After(50 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	probers := map[string]Prober{KindTCP: wait}
	rep := Run(context.Background(), []Target{{Address: "a:1", Kind: KindTCP, Count: 30}}, Options{Concurrency: 2, Probers: probers})
	if p := peak.Load(); !rep.OK || p <= 2 || p > 2*WaitFactor {
		t.Fatalf("lingering: peak %d, want more than the concurrency 2 and at most %d", p, 2*WaitFactor)
	}
	peak.Store(0)
	rep = Run(context.Background(), []Target{{Address: "a:1", Kind: KindTCP, Count: 30, Linger: NoLinger}}, Options{Concurrency: 2, Probers: probers})
	if p := peak.Load(); !rep.OK || p > 2 {
		t.Fatalf("not lingering: peak %d, want at most the concurrency 2", p)
	}
}

func TestRunPerAttemptDeadline(t *testing.T) {
	silent := startFakeMySQL(t, fakeSilent)
	rep := Run(context.Background(), []Target{{Address: silent, Kind: KindMySQL, Count: 4, Timeout: 50 * time.Millisecond}}, Options{Concurrency: 4})
	tr := rep.Targets[0]
	if tr.Fail != 4 || tr.Errors[ReasonTimeout] != 4 {
		t.Fatalf("fail %d errors %v, want 4 timeouts", tr.Fail, tr.Errors)
	}
}

func TestRunIdleHoldProgress(t *testing.T) {
	addr := startFakeMySQL(t, fakeHandshake)
	var lines atomic.Int32
	rep := Run(context.Background(), []Target{{Address: addr, Kind: KindIdleHold, Over: KindMySQL, Idle: 300 * time.Millisecond}},
		Options{Timeout: time.Second, ProgressEvery: 50 * time.Millisecond, Progress: func(string) { lines.Add(1) }})
	if !rep.OK || rep.Targets[0].AttemptsTotal != 1 {
		t.Fatalf("report %+v", rep.Targets[0])
	}
	if a := rep.Targets[0].Attempts[0]; a.Idle == nil || a.Idle.Closed {
		t.Fatalf("idle result %+v", a.Idle)
	}
	if lines.Load() == 0 {
		t.Fatal("no progress line during a hold")
	}
}
