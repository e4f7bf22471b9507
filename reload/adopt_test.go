package reload

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// oldHost makes the fixture a host haguard never reloaded, whose worker
// started an hour ago; the config was written age ago.
func oldHost(t *testing.T, f *fixture, age time.Duration) {
	t.Helper()
	f.w.master.Workers[0].Uptime = time.Hour
	when := time.Now().Add(-age)
	if err := os.Chtimes(f.target, when, when); err != nil {
		t.Fatal(err)
	}
}

func TestStatusAdoptsAnUntouchedSet(t *testing.T) {
	f := newFixture(t)
	oldHost(t, f, 2*time.Hour)
	st, err := f.r.Status(context.Background(), true)
	if err != nil || st.Drift || !st.Adopted || st.RunningSHA256 != sha([]byte("good v1\n")) {
		t.Fatalf("fresh host: drift %v (%s) adopted %v running %s, err %v", st.Drift, st.DriftReason, st.Adopted, st.RunningSHA256, err)
	}
	run, err := f.r.store.running()
	if err != nil || !run.Adopted || run.ID != "adopted" {
		t.Fatalf("running.json %+v %v", run, err)
	}
	if _, err := f.r.store.blob(run.SHA256); err != nil {
		t.Fatalf("the adopted set is not in history: %v", err)
	}
	// Once adopted it is what runs: a later status says the same.
	if st, _ := f.r.Status(context.Background(), true); st.Drift {
		t.Fatalf("second status: %+v", st)
	}
}

func TestStatusReportsAnEditAfterStartAsDrift(t *testing.T) {
	f := newFixture(t)
	oldHost(t, f, 0) // written now, long after the worker started
	st, _ := f.r.Status(context.Background(), true)
	if !st.Drift || st.Adopted || !strings.Contains(st.DriftReason, "after the running generation started") {
		t.Fatalf("drift %v adopted %v reason %q", st.Drift, st.Adopted, st.DriftReason)
	}
	if _, err := f.r.store.running(); err == nil {
		t.Fatal("a set edited after the start was adopted")
	}
}

// A file written within the slack before the start is not adopted either,
// and the reason says it was before, by too little to tell.
func TestStatusDoesNotAdoptAnEditJustBeforeStart(t *testing.T) {
	f := newFixture(t)
	oldHost(t, f, time.Hour+300*time.Millisecond)
	st, _ := f.r.Status(context.Background(), true)
	if !st.Drift || st.Adopted || !strings.Contains(st.DriftReason, "less than 1s before the running generation started") {
		t.Fatalf("drift %v adopted %v reason %q", st.Drift, st.Adopted, st.DriftReason)
	}
}

// The first reload on a host adopts the set on disk, and a failure rolls
// back to it; the history says what it rolled back to came from disk.
func TestFirstReloadRollsBackToTheAdoptedSet(t *testing.T) {
	f := newFixture(t)
	oldHost(t, f, 2*time.Hour)
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "dead v2\n")})
	if !errors.Is(err, ErrRolledBack) || errors.Is(err, ErrBroken) || f.disk(t) != "good v1\n" {
		t.Fatalf("err %v disk %q", err, f.disk(t))
	}
	if res.Snapshot == nil || !res.Snapshot.Adopted || res.Snapshot.Why != "" {
		t.Fatalf("snapshot %+v, want the adopted set as the rollback target", res.Snapshot)
	}
	es, _ := f.r.History()
	if len(es) != 1 || !es[0].Adopted || es[0].BeforeSHA256 != sha([]byte("good v1\n")) {
		t.Fatalf("history %+v", es)
	}
}

// An in-place edit on a host haguard never reloaded: nothing tells what
// runs, so nothing is adopted and the snapshot says there is no target.
func TestFirstInPlaceEditHasNoTarget(t *testing.T) {
	f := newFixture(t)
	f.w.master.Workers[0].Uptime = time.Hour
	if err := os.WriteFile(f.target, []byte("good v2\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	res, err := f.r.Run(context.Background(), Options{})
	if err != nil || !res.OK {
		t.Fatalf("err %v", err)
	}
	if res.Snapshot == nil || res.Snapshot.Adopted || res.Snapshot.Why == "" {
		t.Fatalf("snapshot %+v, want no rollback target and the reason", res.Snapshot)
	}
}
