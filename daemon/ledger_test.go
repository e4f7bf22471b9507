package daemon

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/internal/metricstest"
	"github.com/haguard/haguard/reload"
)

// gatherCounter returns the value of name{label=value} in a scrape of m.
func gatherCounter(t *testing.T, m *api.Metrics, name, label, value string) float64 {
	t.Helper()
	v := metricstest.Value(metricstest.Gather(t, m), name, label, value)
	if v < 0 {
		t.Fatalf("no %s{%s=%q}", name, label, value)
	}
	return v
}

// The ledger counts the command-line transactions appended to the audit
// log after it started, with the API's result names, and skips the API's
// own (counted as they finish).
func TestLedgerCountsCommandLineTransactions(t *testing.T) {
	dir := t.TempDir()
	write := func(who, outcome string, ok bool) {
		t.Helper()
		b, err := json.Marshal(reload.AuditRecord{Who: who, Outcome: outcome,
			Result: reload.Result{ID: who + "-" + outcome, OK: ok, Outcome: outcome, DurationMS: 300,
				Probes: reload.ProbeReport{OK: 10}}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(filepath.Join(dir, "audit.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	m := api.NewMetrics()
	write("alice", reload.OutcomeCommitted, true) // before the daemon started
	stateDir := dir
	l := newLedger(m, slog.New(slog.DiscardHandler), func() string { return stateDir })
	write("bob", reload.OutcomeCommitted, true)
	write(apiWho, reload.OutcomeCommitted, true)
	write("carol", reload.OutcomeRolledBack, false)
	write("dave", reload.OutcomeUnchanged, false) // unchanged, but sweep or probe failed
	write("erin", reload.OutcomeBroken, false)
	write("frank", reload.OutcomeRefused, false)
	l.read()
	l.read() // nothing new
	want := map[string]float64{api.ResultOK: 1, api.ResultRolledBack: 1, api.ResultFailed: 2, api.ResultRefused: 1, api.ResultUnchanged: 0}
	for result, n := range want {
		if got := gatherCounter(t, m, "haguard_reloads_total", "result", result); got != n {
			t.Errorf("haguard_reloads_total{result=%q} = %v, want %v", result, got, n)
		}
	}
	if got := gatherCounter(t, m, "haguard_probe_attempts_total", "result", "ok"); got != 50 {
		t.Errorf("probe attempts ok = %v, want 50 (5 command-line transactions of 10)", got)
	}

	// A new state_dir (SIGHUP) starts at the end of its own log.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "audit.log"), []byte(strings.Repeat("{}\n", 3)), 0o640); err != nil {
		t.Fatal(err)
	}
	stateDir = other
	l.read()
	dir = other
	write("gina", reload.OutcomeCommitted, true)
	l.read()
	if got := gatherCounter(t, m, "haguard_reloads_total", "result", api.ResultOK); got != 2 {
		t.Errorf("after the state dir moved, ok = %v, want 2", got)
	}
}
