package reload

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// provisional commits v2 with a confirmation window of d.
func provisional(t *testing.T, f *fixture, d time.Duration) Result {
	t.Helper()
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), ConfirmWithin: d, Who: "alice"})
	if err != nil || !res.OK || res.Pending == nil || res.Outcome != OutcomeProvisional {
		t.Fatalf("provisional reload: err %v ok %v pending %+v outcome %s", err, res.OK, res.Pending, res.Outcome)
	}
	if len(f.w.watches) != 1 || f.w.watches[0] != res.ID || res.Pending.Watcher != "haguard-confirm-"+res.ID+".service" {
		t.Fatalf("watchers %v, pending %+v", f.w.watches, res.Pending)
	}
	return res
}

func entryOf(t *testing.T, f *fixture, id string) Entry {
	t.Helper()
	e, err := f.r.store.entry(id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestConfirmKeepsTheReload(t *testing.T) {
	f := newFixture(t)
	res := provisional(t, f, time.Hour)
	if e := entryOf(t, f, res.ID); e.Outcome != OutcomeProvisional || e.Confirmation == nil || !e.Confirmation.Deadline.Equal(res.Pending.Deadline) {
		t.Fatalf("entry %+v", e)
	}
	// Another reload waits for the verdict on this one.
	_, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v3\n")})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "awaits confirmation") || !strings.Contains(err.Error(), "haguard confirm "+res.ID) {
		t.Fatalf("a reload during the window: %v", err)
	}
	if _, err := f.r.Confirm(context.Background(), "20990101T000000.000Z-0000", "bob"); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("confirming another id: %v", err)
	}
	e, err := f.r.Confirm(context.Background(), "", "bob")
	if err != nil || e.Outcome != OutcomeCommitted || e.Confirmation.Result != ConfirmConfirmed || e.Confirmation.By != "bob" || e.Confirmation.At == nil {
		t.Fatalf("confirm: %+v %v", e, err)
	}
	if p, _ := f.r.Pending(); p != nil {
		t.Fatalf("still pending: %+v", p)
	}
	if f.disk(t) != "good v2\n" {
		t.Fatal("confirm changed the disk")
	}
	// Its watcher sees the window closed and stops at once.
	out, err := f.r.Watch(context.Background(), res.ID, time.Millisecond)
	if err != nil || out.Result != ConfirmConfirmed || out.Rollback != nil {
		t.Fatalf("watch after confirm: %+v %v", out, err)
	}
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v3\n")}); err != nil {
		t.Fatalf("a reload after the confirm: %v", err)
	}
	if _, err := f.r.Confirm(context.Background(), "", "bob"); !errors.Is(err, ErrNothingPending) || !strings.Contains(err.Error(), "was confirmed") {
		t.Fatalf("a second confirm: %v", err)
	}
}

func TestNoConfirmRollsBackAtTheDeadline(t *testing.T) {
	f := newFixture(t)
	res := provisional(t, f, 300*time.Millisecond)
	out, err := f.r.Watch(context.Background(), res.ID, 50*time.Millisecond)
	if err != nil || out.Result != ConfirmRolledBack || out.Rollback == nil || !out.Rollback.OK {
		t.Fatalf("watch: %+v %v", out, err)
	}
	if f.disk(t) != "good v1\n" || string(f.w.loaded) != "good v1\n" {
		t.Fatalf("not rolled back: disk %q loaded %q", f.disk(t), f.w.loaded)
	}
	e := entryOf(t, f, res.ID)
	if e.Outcome != OutcomeRolledBack || e.Confirmation.Result != ConfirmRolledBack || !strings.Contains(e.Confirmation.Reason, "not confirmed within the window") {
		t.Fatalf("entry %+v confirmation %+v", e, e.Confirmation)
	}
	if _, err := f.r.Confirm(context.Background(), res.ID, "bob"); !errors.Is(err, ErrNothingPending) || !strings.Contains(err.Error(), "was rolled back") {
		t.Fatalf("a late confirm: %v", err)
	}
	es, _ := f.r.History()
	last := es[len(es)-1]
	if last.Outcome != OutcomeCommitted || !strings.Contains(last.Reason, "rollback of "+res.ID) || last.Who != "haguard confirm-within watcher" {
		t.Fatalf("the rollback's entry: %+v", last)
	}
}

func TestDegradationRollsBackEarly(t *testing.T) {
	f := newFixture(t)
	res := provisional(t, f, time.Hour)
	f.w.serversDown = true // the backend dies during the window
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := f.r.Watch(ctx, res.ID, 20*time.Millisecond)
	if err != nil || out.Result != ConfirmRolledBack || !strings.Contains(out.Reason, "backend be lost its UP servers (s1 DOWN L4CON)") {
		t.Fatalf("watch: %+v %v", out, err)
	}
	if f.disk(t) != "good v1\n" {
		t.Fatal("not rolled back")
	}
}

func TestWatcherThatCannotStartRollsBack(t *testing.T) {
	f := newFixture(t)
	f.w.watchErr = errors.New("no systemd")
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), ConfirmWithin: time.Hour})
	if !errors.Is(err, ErrRolledBack) || stageError(res, StageWatch) == "" || res.Pending != nil {
		t.Fatalf("err %v watch stage %q pending %+v", err, stageError(res, StageWatch), res.Pending)
	}
	if p, _ := f.r.Pending(); p != nil || f.disk(t) != "good v1\n" {
		t.Fatalf("pending %+v disk %q", p, f.disk(t))
	}
}

// `haguard rollback ID` during the window rejects the reload at once.
func TestRollbackDuringTheWindowClosesIt(t *testing.T) {
	f := newFixture(t)
	res := provisional(t, f, time.Hour)
	if _, err := f.r.RollbackTo(context.Background(), "", Options{Who: "bob"}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	e := entryOf(t, f, res.ID)
	if p, _ := f.r.Pending(); p != nil || e.Outcome != OutcomeRolledBack || e.Confirmation.Result != ConfirmRolledBack || e.Confirmation.By != "bob" {
		t.Fatalf("pending %+v entry %+v", p, e)
	}
}

func TestWatchStopsWhenConfirmed(t *testing.T) {
	f := newFixture(t)
	res := provisional(t, f, time.Hour)
	done := make(chan WatchOutcome, 1)
	go func() {
		out, _ := f.r.Watch(context.Background(), res.ID, 20*time.Millisecond)
		done <- out
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := f.r.Confirm(context.Background(), res.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-done:
		if out.Result != ConfirmConfirmed || out.Rollback != nil {
			t.Fatalf("watch: %+v", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not stop")
	}
}
