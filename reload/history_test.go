package reload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHistoryListsRefused: a transaction refused by the check installs
// nothing and writes no history entry, but audit.log records it; the
// history lists it (outcome refused, the operator's reason, the failed
// stage, no snapshot) in order, and it is not a rollback target.
func TestHistoryListsRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ok, err := f.r.Run(ctx, Options{Candidate: f.candidate(t, "good v2\n"), Who: "alice", Reason: "bump"})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := f.r.Run(ctx, Options{Candidate: f.candidate(t, "syntax error\n"), Who: "bob", Reason: "typo"})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("err %v, want ErrRefused", err)
	}
	es, err := ReadHistory(f.s.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].ID != ok.ID || es[1].ID != bad.ID {
		t.Fatalf("history %+v, want %s then the refused %s", es, ok.ID, bad.ID)
	}
	r := es[1]
	if r.Outcome != OutcomeRefused || r.Who != "bob" || r.Reason != "typo" || r.Target != f.target ||
		r.BeforeSHA256 != "" || r.AfterSHA256 != "" || r.Time.IsZero() ||
		!strings.HasPrefix(r.Error, "check: ") || !strings.Contains(r.Error, "unknown keyword") {
		t.Fatalf("refused entry %+v", r)
	}
	if es[0].Error != "" {
		t.Fatalf("committed entry has an error: %+v", es[0])
	}
	if h, err := f.r.History(); err != nil || len(h) != 2 {
		t.Fatalf("Reloader.History %+v %v", h, err)
	}
	if st, err := f.r.Status(ctx, true); err != nil || st.Last == nil || st.Last.ID != bad.ID {
		t.Fatalf("status last %+v %v, want the refused %s", st.Last, err, bad.ID)
	}

	// Not a rollback target; the default target is still the commit.
	before := f.w.reloads
	_, err = f.r.RollbackTo(ctx, bad.ID, Options{})
	if !errors.Is(err, ErrNoHistory) || !strings.Contains(err.Error(), "transaction "+bad.ID+" was refused (check: ") ||
		!strings.Contains(err.Error(), "nothing was installed") {
		t.Fatalf("rollback of the refused id: %v", err)
	}
	if f.w.reloads != before {
		t.Fatal("rollback of a refused id reloaded")
	}
	if e, err := RollbackTarget(f.s.StateDir, ""); err != nil || e.ID != ok.ID {
		t.Fatalf("default target %+v %v, want %s", e, err, ok.ID)
	}
	// The refused run left no entry file, so pruning never counts it.
	if _, err := os.Stat(filepath.Join(f.s.StateDir, "history", bad.ID+".json")); !os.IsNotExist(err) {
		t.Fatalf("refused run wrote a history entry: %v", err)
	}
}

func TestRollbackTargetErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.r.Run(ctx, Options{Candidate: f.candidate(t, "good v2\n")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, want string }{
		{"20990101T000000.000Z-ffff", "no transaction 20990101T000000.000Z-ffff in "},
		{"../etc/passwd", `"../etc/passwd" is not a transaction id`},
	} {
		_, err := RollbackTarget(f.s.StateDir, tc.id)
		if !errors.Is(err, ErrNoHistory) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrNoHistory and %q", tc.id, err, tc.want)
		}
	}
	_, err := RollbackTarget(t.TempDir(), "")
	if !errors.Is(err, ErrNoHistory) || !strings.Contains(err.Error(), "no committed transaction with a snapshot") {
		t.Errorf("empty state dir: %v", err)
	}
}

// TestHistoryTornAuditLine: a torn last audit line (power cut mid-write)
// does not hide the rest of the history.
func TestHistoryTornAuditLine(t *testing.T) {
	f := newFixture(t)
	bad, _ := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "syntax error\n")})
	fh, err := os.OpenFile(filepath.Join(f.s.StateDir, "audit.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(`{"time":"2026-11-28T02:00:00Z","outco`); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	es, err := ReadHistory(f.s.StateDir)
	if err != nil || len(es) != 1 || es[0].ID != bad.ID || es[0].Outcome != OutcomeRefused {
		t.Fatalf("history %+v %v", es, err)
	}
}
