package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/reload"
)

// complete runs cobra's __complete, as the shells' scripts do, and returns
// the offered values (descriptions cut off) and the directive line.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(t.Context(), append([]string{"__complete"}, args...), &out, &errb); code != 0 {
		t.Fatalf("__complete %q: exit %d: %s", args, code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	directive := lines[len(lines)-1]
	var vals []string
	for _, l := range lines[:len(lines)-1] {
		v, _, _ := strings.Cut(l, "\t")
		vals = append(vals, v)
	}
	return vals, directive
}

func TestFlagValueCompletion(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", ""}, "human json jsonl"},
		{[]string{"check", "--format", "j"}, "json jsonl"},
		{[]string{"--log-level", ""}, "debug info warn error"},
		{[]string{"check", "--facts", ""}, "none declared live"},
		{[]string{"check", "--fail-on", ""}, "error warning"},
		{[]string{"probe", "--kind", ""}, "tcp mysql http idle-hold"},
		{[]string{"probe", "--kind", "i"}, "idle-hold"},
		{[]string{"probe", "--over", ""}, "mysql tcp"},
		{[]string{"probe", "--target", ""}, ""},
	} {
		got, directive := complete(t, c.args...)
		if strings.Join(got, " ") != c.want {
			t.Errorf("%q: offered %q, want %q", c.args, got, c.want)
		}
		if directive != ":4" { // ShellCompDirectiveNoFileComp
			t.Errorf("%q: directive %s, want :4 (no file names)", c.args, directive)
		}
	}
	// --config-file offers YAML files (directive FilterFileExt).
	if got, directive := complete(t, "--config-file", ""); directive != ":8" || strings.Join(got, " ") != "yaml yml" {
		t.Errorf("--config-file: %q %s, want yaml yml :8", got, directive)
	}
}

// rollback's ID completes from the history of the state dir that
// haguard.yaml names: the targets only (a refused transaction kept no
// snapshot), newest first.
func TestRollbackIDCompletion(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	hist := filepath.Join(state, "history")
	if err := os.MkdirAll(hist, 0o700); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 28, 1, 57, 42, 0, time.UTC)
	for i, e := range []reload.Entry{
		{ID: "20261128T015742.000Z-aaaa", Outcome: reload.OutcomeCommitted, BeforeSHA256: strings.Repeat("1", 64), Reason: "first"},
		{ID: "20261128T015842.000Z-bbbb", Outcome: reload.OutcomeRolledBack, BeforeSHA256: strings.Repeat("2", 64)},
		{ID: "20261128T015942.000Z-cccc", Outcome: reload.OutcomeCommitted}, // a first in-place reload: no snapshot
	} {
		e.Time = t0.Add(time.Duration(i) * time.Minute)
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hist, e.ID+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "haguard.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+state+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, directive := complete(t, "--config-file", cfg, "rollback", "")
	if want := "20261128T015842.000Z-bbbb 20261128T015742.000Z-aaaa"; strings.Join(got, " ") != want {
		t.Errorf("rollback <TAB>: %q, want %q", got, want)
	}
	if directive != ":36" { // NoFileComp | KeepOrder
		t.Errorf("directive %s, want :36", directive)
	}
	if got, _ := complete(t, "--config-file", cfg, "rollback", "20261128T0157"); strings.Join(got, " ") != "20261128T015742.000Z-aaaa" {
		t.Errorf("rollback 20261128T0157<TAB>: %q", got)
	}
	if got, _ := complete(t, "--config-file", cfg, "rollback", "20261128T015742.000Z-aaaa", ""); len(got) != 0 {
		t.Errorf("a second argument was offered: %q", got)
	}
}

// haguard --version prints what haguard version prints.
func TestVersionFlag(t *testing.T) {
	var a, b, errb bytes.Buffer
	if code := Run(t.Context(), "v1.2.3", []string{"--version"}, &a, &errb); code != 0 {
		t.Fatalf("--version: exit %d %s", code, errb.String())
	}
	if code := Run(t.Context(), "v1.2.3", []string{"version"}, &b, &errb); code != 0 {
		t.Fatalf("version: exit %d %s", code, errb.String())
	}
	if a.String() != b.String() || !strings.HasPrefix(a.String(), "haguard v1.2.3 (go") {
		t.Fatalf("--version printed %q, version printed %q", a.String(), b.String())
	}
}
