package reload

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder keeps a run's events.
type recorder struct {
	mu sync.Mutex
	es []Event
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.es = append(r.es, e)
}

func (r *recorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.es)
}

// lines renders the events as "type stage detail" for comparisons.
func (r *recorder) lines() []string {
	var out []string
	for _, e := range r.events() {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", e.Type, e.Stage, e.Detail)))
	}
	return out
}

// Every stage is told when it starts and when it ends, in order, with the
// run's id, and the end carries what the Result's stage does.
func TestProgressBracketsEveryStage(t *testing.T) {
	f := newFixture(t)
	var rec recorder
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), Progress: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	var ends []Stage
	open := ""
	for _, e := range rec.events() {
		if e.ID != res.ID || e.Time.IsZero() {
			t.Fatalf("event %+v: want id %s and a time", e, res.ID)
		}
		switch e.Type {
		case EventStageStart:
			if open != "" {
				t.Fatalf("%s starts while %s is open", e.Stage, open)
			}
			open = e.Stage
		case EventStageEnd:
			if e.Stage != open || e.OK == nil {
				t.Fatalf("end %+v, open %q", e, open)
			}
			open = ""
			ends = append(ends, Stage{Name: e.Stage, OK: *e.OK, DurationMS: e.DurationMS, Detail: e.Detail, Error: e.Error})
		}
	}
	if !slices.Equal(ends, res.Stages) {
		t.Fatalf("stage ends %+v\nresult     %+v", ends, res.Stages)
	}
}

// A rollback is one stage that holds a restore, a reload, a settle and a
// probe: each is told as it happens, inside the rollback stage.
func TestProgressFollowsTheRollback(t *testing.T) {
	f := newFixture(t)
	var rec recorder
	_, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "dead backend\n"), Progress: rec.add})
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err %v", err)
	}
	var inRollback []string
	for _, e := range rec.events() {
		if e.Stage == StageRollback {
			inRollback = append(inRollback, e.Type+" "+e.Detail)
		}
	}
	want := []string{EventStageStart + " ", EventStep + " reloading haproxy.service, waiting for the job",
		EventStep + " probing every listener", EventStep + " probes: 4/4 OK"}
	if len(inRollback) < len(want)+1 || !slices.Equal(inRollback[:len(want)], want) || !strings.HasPrefix(inRollback[len(inRollback)-1], EventStageEnd+" restored sha256") {
		t.Fatalf("rollback events:\n%s", strings.Join(inRollback, "\n"))
	}
}

// Settle says what it waits for, once per change: here HAProxy 3.1+'s
// "reloading" while the new worker loads.
func TestProgressSaysWhatSettleWaitsFor(t *testing.T) {
	f := newFixture(t)
	f.w.loadPolls = 3
	var rec recorder
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), Progress: rec.add}); err != nil {
		t.Fatal(err)
	}
	want := "wait settle haproxy to finish loading the new config (unit haproxy.service is reloading)"
	if n := slices.Index(rec.lines(), want); n < 0 || slices.Contains(rec.lines()[n+1:], want) {
		t.Fatalf("want %q once:\n%s", want, strings.Join(rec.lines(), "\n"))
	}
}

// A run that waits for the lock says who holds it: pid, who, why, since.
func TestProgressNamesTheLockHolder(t *testing.T) {
	f := newFixture(t)
	start := time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)
	lk, err := acquireLock(context.Background(), f.s.StateDir, false, 0, holderOf(Options{Who: "alice", Reason: "bump"}, 4242, start), nil)
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	done := make(chan error, 1)
	go func() {
		_, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), Progress: rec.add})
		done <- err
	}()
	want := `lock_wait  pid 4242 (haguard reload by alice, reason "bump", since 2026-11-28T02:00:00Z)`
	for !slices.Contains(rec.lines(), want) {
		select {
		case err := <-done:
			t.Fatalf("run ended (%v) without %q: %q", err, want, rec.lines())
		case <-time.After(10 * time.Millisecond):
		}
	}
	lk.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(rec.lines(), "\n"), "lock_wait"); n != 1 {
		t.Fatalf("lock wait told %d times", n)
	}
}

// A stopped haproxy is said at once, not after the settle timeout.
func TestStoppedHAProxyRefusedAtOnce(t *testing.T) {
	f := newFixture(t)
	f.w.active = "inactive"
	d := f.w.deps()
	d.Master = &flakyMaster{world: f.w, n: 1 << 30}
	s := f.s
	s.SettleTimeout = time.Minute
	r, _ := New(s, d)
	// Only the unit's state says why; the master alone would be waited
	// for until the timeout.
	res, err := r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "unit haproxy.service is inactive, haproxy is not running") {
		t.Fatalf("err %v; stages %+v", err, res.Stages)
	}
}

// Inside the unit's own reload job (haguard exec-reload) systemd shows the
// unit "reloading" until the run ends: settle goes by the master's
// counters then, where a run outside the job waits for the state to end.
func TestInReloadJobSettlesOnTheCounters(t *testing.T) {
	for _, inJob := range []bool{true, false} {
		t.Run(fmt.Sprint("in job ", inJob), func(t *testing.T) {
			f := newFixture(t)
			f.w.active = "reloading" // the job that runs this transaction
			s := f.s
			s.SettleTimeout = 300 * time.Millisecond
			r, _ := New(s, f.w.deps())
			res, err := r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), InReloadJob: inJob})
			if inJob && err != nil {
				t.Fatalf("in the job: %v; stages %+v", err, res.Stages)
			}
			// Outside a job, a unit already reloading is another reload
			// still loading: refused before anything is touched.
			var sl *StillLoadingError
			if !inJob && (!errors.Is(err, ErrRefused) || !errors.As(err, &sl)) {
				t.Fatalf("outside a job, a unit that is reloading must refuse: %v", err)
			}
		})
	}
}

// jobWorld runs what the unit's ExecReload runs with the drop-in: it asks
// DriverOf whose reload the job is, while the transaction waits for it.
type jobWorld struct {
	*world
	state  string
	driver Driver
	driven bool
	err    error
}

func (j *jobWorld) Reload(ctx context.Context, unit string) error {
	j.driver, j.driven, j.err = DriverOf(ctx, j.state)
	return j.world.Reload(ctx, unit)
}

// haguard's own reload, seen from the job it asks for, is its own: no
// second check, no wait for the lock it holds. Outside a transaction
// nothing drives the job, and a transaction at another stage is busy.
func TestDriverOf(t *testing.T) {
	f := newFixture(t)
	jw := &jobWorld{world: f.w, state: f.s.StateDir}
	d := f.w.deps()
	d.Reload = jw
	r, _ := New(f.s, d)
	res, err := r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), Who: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if jw.err != nil || !jw.driven || jw.driver.ID != res.ID || jw.driver.Stage != StageReload || !strings.Contains(jw.driver.Holder, "haguard reload by alice") {
		t.Fatalf("driver %+v driven %v err %v", jw.driver, jw.driven, jw.err)
	}
	// And its rollback's reload too.
	_, err = r.Run(context.Background(), Options{Candidate: f.candidate(t, "dead v3\n")})
	if !errors.Is(err, ErrRolledBack) || !jw.driven || jw.driver.Stage != StageRollback {
		t.Fatalf("rollback: %v; driver %+v driven %v", err, jw.driver, jw.driven)
	}

	if _, driven, err := DriverOf(context.Background(), f.s.StateDir); driven || err != nil {
		t.Fatalf("idle: driven %v err %v", driven, err)
	}
	lk, err := acquireLock(context.Background(), f.s.StateDir, false, 0, "pid 7 (haguard reload by bob, since then)", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.release()
	_, driven, err := DriverOf(context.Background(), f.s.StateDir)
	var be *BusyError
	if driven || !errors.As(err, &be) || !errors.Is(err, ErrLocked) || be.Holder != "pid 7 (haguard reload by bob, since then)" || be.Stage != "" {
		t.Fatalf("busy at check: driven %v err %v", driven, err)
	}
	if err := f.r.store.writeJournal(Journal{ID: "x", PID: 7, Stage: StageProbe}); err != nil {
		t.Fatal(err)
	}
	if _, driven, err = DriverOf(context.Background(), f.s.StateDir); driven || !errors.As(err, &be) || be.Stage != StageProbe {
		t.Fatalf("busy at probe: driven %v err %v", driven, err)
	}
}

// reload.min_interval: a reload right after the last one waits it out
// (and says so), or fails fast with NoWait; the unit's own reload job
// never waits.
func TestMinInterval(t *testing.T) {
	for _, c := range []struct {
		name          string
		noWait, inJob bool
	}{{"waits", false, false}, {"no wait", true, false}, {"in job", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			s := f.s
			s.MinInterval = 1500 * time.Millisecond
			r, _ := New(s, f.w.deps())
			var waits []string
			begin := time.Now()
			_, err := r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), NoWait: c.noWait, InReloadJob: c.inJob,
				Progress: func(e Event) {
					if e.Type == EventWait && strings.Contains(e.Detail, "min_interval") {
						waits = append(waits, e.Detail)
					}
				}})
			took := time.Since(begin)
			var tooSoon *TooSoonError
			switch {
			case c.noWait:
				if !errors.Is(err, ErrRefused) || !errors.As(err, &tooSoon) || tooSoon.Wait <= 0 {
					t.Fatalf("--no-wait inside the interval: %v", err)
				}
			case c.inJob:
				if err != nil || len(waits) != 0 || took > time.Second {
					t.Fatalf("in the reload job: err %v, waits %v, took %v", err, waits, took)
				}
			default:
				if err != nil || len(waits) != 1 || took < time.Second {
					t.Fatalf("inside the interval: err %v, waits %v, took %v (want a wait of about 1.5 s)", err, waits, took)
				}
			}
		})
	}
}
