package reload

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestIfMatchUnderLock is issue 17's lost update: one run holds the lock
// and commits c1 while a second, whose IfMatch names the config before
// c1, waits for the lock. The second must be refused with a *StaleError
// once it holds the lock, and c1 must stay installed.
func TestIfMatchUnderLock(t *testing.T) {
	f := newFixture(t)
	before, err := f.r.Identity()
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{})
	release := make(chan struct{})
	d := f.w.deps()
	d.Pause = func(_ context.Context, stage string) {
		if stage == StageInstall {
			close(held)
			<-release
		}
	}
	first, err := New(f.s, d)
	if err != nil {
		t.Fatal(err)
	}
	c1 := f.candidate(t, "good c1\n")
	c2 := f.candidate(t, "good c2\n")
	firstDone := make(chan error, 1)
	go func() {
		_, err := first.Run(context.Background(), Options{Candidate: c1, Who: "cli"})
		firstDone <- err
	}()
	<-held
	// The config is still the one the client saw: a check before the
	// lock would pass.
	if now, _ := f.r.Identity(); now != before {
		t.Fatalf("identity changed before install: %s", now)
	}
	secondDone := make(chan struct {
		res Result
		err error
	}, 1)
	go func() {
		res, err := f.r.Run(context.Background(), Options{Candidate: c2, Who: "api", IfMatch: before, ID: "20261202T000000.000Z-api1"})
		secondDone <- struct {
			res Result
			err error
		}{res, err}
	}()
	time.Sleep(200 * time.Millisecond) // the second is waiting for the lock
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatalf("first run: %v", err)
	}
	got := <-secondDone
	var se *StaleError
	if !errors.Is(got.err, ErrRefused) || !errors.As(got.err, &se) || se.Want != before {
		t.Fatalf("second run: %v, want refused with a StaleError", got.err)
	}
	if got.res.ID != "20261202T000000.000Z-api1" || got.res.Outcome != OutcomeRefused {
		t.Fatalf("second result: id %s outcome %s", got.res.ID, got.res.Outcome)
	}
	if f.disk(t) != "good c1\n" {
		t.Fatalf("installed %q, want c1", f.disk(t))
	}
	// With the right tag the same request goes through.
	now, _ := f.r.Identity()
	if _, err := f.r.Run(context.Background(), Options{Candidate: c2, IfMatch: now}); err != nil {
		t.Fatalf("fresh If-Match: %v", err)
	}
	if f.disk(t) != "good c2\n" {
		t.Fatalf("installed %q, want c2", f.disk(t))
	}
}
