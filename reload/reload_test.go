package reload

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCommit(t *testing.T) {
	f := newFixture(t)
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), Who: "alice", Reason: "bump"})
	if err != nil {
		t.Fatalf("Run: %v (%+v)", err, res.Stages)
	}
	if !res.OK || res.RolledBack || res.Unchanged {
		t.Fatalf("result %+v", res)
	}
	want := []string{StageCheck, StageSnapshot, StageInstall, StageReload, StageSettle, StageSweep, StageProbe}
	if got := stageNames(res); !slices.Equal(got, want) {
		t.Fatalf("stages %v, want %v", got, want)
	}
	if f.disk(t) != "good v2\n" {
		t.Fatalf("target holds %q", f.disk(t))
	}
	st, _ := os.Stat(f.target)
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want the old file's 0640", st.Mode().Perm())
	}
	if f.w.master.Reloads != 1 {
		t.Fatalf("reloads %d", f.w.master.Reloads)
	}
	es, err := f.r.History()
	if err != nil || len(es) != 1 {
		t.Fatalf("history %v %v", es, err)
	}
	e := es[0]
	if e.Outcome != OutcomeCommitted || e.Who != "alice" || e.Reason != "bump" || e.BeforeSHA256 != sha([]byte("good v1\n")) || e.AfterSHA256 != sha([]byte("good v2\n")) {
		t.Fatalf("entry %+v", e)
	}
	if _, err := os.Stat(filepath.Join(f.s.StateDir, "journal.json")); !os.IsNotExist(err) {
		t.Fatalf("journal left behind: %v", err)
	}
	recs := auditLines(t, f)
	if len(recs) != 1 || recs[0].Outcome != OutcomeCommitted || recs[0].Result.ID != res.ID {
		t.Fatalf("audit %+v", recs)
	}
}

func TestJSONContract(t *testing.T) {
	f := newFixture(t)
	res, _ := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"duration_ms", "findings", "id", "ok", "probes", "processes", "rolled_back", "stages", "unchanged"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	var st []map[string]any
	_ = json.Unmarshal(m["stages"], &st)
	for _, k := range []string{"name", "ok", "duration_ms", "detail", "error"} {
		if _, ok := st[0][k]; !ok {
			t.Fatalf("stage lacks %q: %v", k, st[0])
		}
	}
	if string(m["findings"]) != "[]" {
		t.Fatalf("findings %s, want []", m["findings"])
	}
}

func TestSyntaxErrorRefused(t *testing.T) {
	f := newFixture(t)
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "syntax error\n")})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("err %v, want ErrRefused", err)
	}
	if res.OK || f.w.reloads != 0 || f.w.master.Reloads != 0 || f.disk(t) != "good v1\n" {
		t.Fatalf("touched the host: ok=%v reloads=%d disk=%q", res.OK, f.w.reloads, f.disk(t))
	}
	if got := stageNames(res); !slices.Equal(got, []string{StageCheck}) || !strings.Contains(res.Stages[0].Error, "unknown keyword") {
		t.Fatalf("stages %+v", res.Stages)
	}
	if recs := auditLines(t, f); len(recs) != 1 || recs[0].Outcome != OutcomeRefused {
		t.Fatalf("audit %+v", recs)
	}
}

func TestErrorFindingRefused(t *testing.T) {
	f := newFixture(t)
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "lint-error\n")})
	if !errors.Is(err, ErrRefused) || len(res.Findings) != 1 || f.w.reloads != 0 {
		t.Fatalf("err %v findings %v reloads %d", err, res.Findings, f.w.reloads)
	}
}

func TestProbeFailRollsBack(t *testing.T) {
	f := newFixture(t)
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "dead backend\n")})
	if !errors.Is(err, ErrRolledBack) || errors.Is(err, ErrBroken) {
		t.Fatalf("err %v, want ErrRolledBack", err)
	}
	if !res.RolledBack || res.OK {
		t.Fatalf("result %+v", res)
	}
	if f.disk(t) != "good v1\n" || string(f.w.loaded) != "good v1\n" {
		t.Fatalf("not restored: disk %q loaded %q", f.disk(t), f.w.loaded)
	}
	if f.w.reloads != 2 {
		t.Fatalf("reload jobs %d, want 2", f.w.reloads)
	}
	last := res.Stages[len(res.Stages)-1]
	if last.Name != StageRollback || !last.OK {
		t.Fatalf("last stage %+v", last)
	}
	es, _ := f.r.History()
	if len(es) != 1 || es[0].Outcome != OutcomeRolledBack {
		t.Fatalf("history %+v", es)
	}
	for _, sum := range []string{es[0].BeforeSHA256, es[0].AfterSHA256} {
		if _, err := f.r.store.blob(sum); err != nil {
			t.Fatalf("history lacks %s: %v", sum, err)
		}
	}
	// What runs is known again: the next identical reload is "unchanged".
	res, err = f.r.Run(context.Background(), Options{})
	if !errors.Is(err, ErrUnchanged) || !res.OK {
		t.Fatalf("after rollback: err %v ok %v", err, res.OK)
	}
}

// The fact the whole design rests on: the job ends "done" but the load
// failed. That must roll back, not commit, whether the master counts the
// failure or only the unit's status says it. The status is read before
// the reload is asked for: read after the job, it would already say
// "failed" and be taken for an old failure.
func TestJobDoneButLoadFailed(t *testing.T) {
	for _, c := range []struct {
		name, body string
		set        func(w *world)
		want       []string
	}{
		{"failed counter", "badbind 10.99.99.99:80\n", func(w *world) { w.failLoad = "badbind" }, []string{"failed reload", "cannot bind"}},
		{"status only", "oddload v2\n", func(w *world) { w.failStatus = "oddload" }, []string{`unit status says "Reload failed!"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			c.set(f.w)
			res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, c.body)})
			if !errors.Is(err, ErrRolledBack) {
				t.Fatalf("err %v, want ErrRolledBack; stages %+v", err, res.Stages)
			}
			var settle Stage
			for _, s := range res.Stages {
				if s.Name == StageSettle {
					settle = s
				}
			}
			for _, w := range c.want {
				if settle.OK || !strings.Contains(settle.Error, w) {
					t.Fatalf("settle %+v, want an error with %q", settle, w)
				}
			}
			if f.disk(t) != "good v1\n" {
				t.Fatalf("disk %q", f.disk(t))
			}
		})
	}
}

// HAProxy 3.1+ lists the new worker while it still loads: the counters
// look like a success until the load ends. Settle waits for the unit to
// leave "reloading", then reads the counters again.
func TestSettleWaitsForTheLoadOutcome(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       error
	}{
		{"load fails", "badbind 10.99.99.99:80\n", ErrRolledBack},
		{"load succeeds", "good v2\n", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.w.failLoad, f.w.loadPolls = "badbind", 3
			res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, c.body)})
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("err %v, want %v; stages %+v", err, c.want, res.Stages)
			}
			if c.want == nil {
				return
			}
			for _, s := range res.Stages {
				if s.Name == StageSettle && (s.OK || !strings.Contains(s.Error, "failed reload (failed 0 -> 1)")) {
					t.Fatalf("settle %+v: the failed load must fail settle, not pass it", s)
				}
			}
		})
	}
}

func TestJobErrorRollsBack(t *testing.T) {
	f := newFixture(t)
	f.w.jobErr = errJob
	_, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")})
	// The rollback's reload fails too: the host is broken.
	if !errors.Is(err, ErrBroken) {
		t.Fatalf("err %v, want ErrBroken", err)
	}
	if j, jerr := f.r.store.journal(); jerr != nil || j.Stage != StageRollback {
		t.Fatalf("a broken run must leave its journal: %+v %v", j, jerr)
	}
}

func TestRollbackFailsIsBroken(t *testing.T) {
	f := newFixture(t)
	// The running config is itself "dead": probes fail before and after.
	if err := os.WriteFile(f.target, []byte("dead v1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	f.w.loaded = []byte("dead v1\n")
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "dead v2\n")})
	if !errors.Is(err, ErrBroken) || !res.Broken || res.RolledBack {
		t.Fatalf("err %v broken %v rolled %v", err, res.Broken, res.RolledBack)
	}
}

func TestUnchangedStillSweepsAndProbes(t *testing.T) {
	f := newFixture(t)
	c := f.candidate(t, "good v2\n")
	if _, err := f.r.Run(context.Background(), Options{Candidate: c}); err != nil {
		t.Fatal(err)
	}
	f.w.procs = []Process{{PID: 999, Class: ClassGhost, Reason: "outside the unit's cgroup"}}
	res, err := f.r.Run(context.Background(), Options{Candidate: c})
	if !errors.Is(err, ErrUnchanged) || !errors.Is(err, ErrVerify) {
		t.Fatalf("err %v, want ErrUnchanged and ErrVerify", err)
	}
	if !res.Unchanged || res.OK || f.w.reloads != 1 {
		t.Fatalf("unchanged %v ok %v reloads %d", res.Unchanged, res.OK, f.w.reloads)
	}
	if got := stageNames(res); !slices.Equal(got, []string{StageCheck, StageSweep, StageProbe}) {
		t.Fatalf("stages %v", got)
	}
	res, err = f.r.Run(context.Background(), Options{Candidate: c, KillGhosts: true})
	if !errors.Is(err, ErrUnchanged) || errors.Is(err, ErrVerify) || !res.OK || !slices.Equal(f.w.killed, []int{999}) {
		t.Fatalf("err %v ok %v killed %v", err, res.OK, f.w.killed)
	}
}

func TestForceReloadsUnchanged(t *testing.T) {
	f := newFixture(t)
	if _, err := f.r.Run(context.Background(), Options{}); err != nil {
		t.Fatal(err) // first in-place reload: running config unknown, so it reloads
	}
	if _, err := f.r.Run(context.Background(), Options{}); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("second: %v", err)
	}
	if _, err := f.r.Run(context.Background(), Options{Force: true}); err != nil {
		t.Fatalf("forced: %v", err)
	}
	if f.w.reloads != 2 {
		t.Fatalf("reload jobs %d, want 2", f.w.reloads)
	}
}

func TestGhostFailsUnlessKilled(t *testing.T) {
	f := newFixture(t)
	f.w.procs = []Process{{PID: 7, Class: ClassCurrent}, {PID: 8, Class: ClassGhost, Reason: "old config"}}
	_, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "pid 8 ghost") {
		t.Fatalf("err %v", err)
	}
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v3\n"), KillGhosts: true})
	if err != nil || !slices.Equal(f.w.killed, []int{8}) || len(res.Processes) != 1 {
		t.Fatalf("err %v killed %v procs %v", err, f.w.killed, res.Processes)
	}
}

// TestKilledGhostsProbedAgain: the probes run beside the sweep, so a
// ghost the sweep then kills may have taken some of them; the probe
// stage probes again after a kill instead of failing on those.
func TestKilledGhostsProbedAgain(t *testing.T) {
	f := newFixture(t)
	f.w.procs = []Process{{PID: 7, Class: ClassCurrent}, {PID: 8, Class: ClassGhost, Reason: "old config"}}
	f.w.ghostsSteal, f.w.probed = true, make(chan struct{})
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), KillGhosts: true})
	if err != nil || !slices.Equal(f.w.killed, []int{8}) || f.w.probes != 2 || res.Probes.OK != 4 {
		t.Fatalf("err %v killed %v probes %d report %+v", err, f.w.killed, f.w.probes, res.Probes)
	}
	// Without a kill the probes beside the sweep are the stage's own.
	f.w.procs = []Process{{PID: 7, Class: ClassCurrent}}
	f.w.probes, f.w.probed = 0, make(chan struct{})
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v3\n")}); err != nil || f.w.probes != 1 {
		t.Fatalf("err %v probes %d", err, f.w.probes)
	}
}

func TestDryRunTouchesNothing(t *testing.T) {
	f := newFixture(t)
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), DryRun: true})
	if err != nil || !res.DryRun || len(res.Plan) == 0 || f.w.reloads != 0 || f.disk(t) != "good v1\n" {
		t.Fatalf("err %v res %+v reloads %d", err, res, f.w.reloads)
	}
	if _, err := os.Stat(filepath.Join(f.s.StateDir, "history")); !os.IsNotExist(err) {
		t.Fatalf("dry run wrote history: %v", err)
	}
}

func TestLockFailFast(t *testing.T) {
	f := newFixture(t)
	lk, err := acquireLock(context.Background(), f.s.StateDir, false, 0, "pid 1 since then", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := f.s
	s.LockWait = false
	r, _ := New(s, f.w.deps())
	_, err = r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")})
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.Holder != "pid 1 since then" {
		t.Fatalf("err %v", err)
	}
	lk.release()
	if _, err := r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")}); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestConcurrentRunsSerialize(t *testing.T) {
	f := newFixture(t)
	cands := []string{f.candidate(t, "good a\n"), f.candidate(t, "good b\n"), f.candidate(t, "good c\n")}
	var wg sync.WaitGroup
	errs := make([]error, len(cands))
	for i, c := range cands {
		wg.Go(func() { _, errs[i] = f.r.Run(context.Background(), Options{Candidate: c}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	es, _ := f.r.History()
	if len(es) != 3 || f.w.master.Reloads != 3 {
		t.Fatalf("history %d reloads %d", len(es), f.w.master.Reloads)
	}
	// Serialized: each run's "before" is the previous run's "after".
	byBefore := map[string]bool{}
	for _, e := range es {
		byBefore[e.BeforeSHA256] = true
	}
	afters := 0
	for _, e := range es {
		if byBefore[e.AfterSHA256] {
			afters++
		}
	}
	if afters != 2 {
		t.Fatalf("runs overlapped: %+v", es)
	}
	if recs := auditLines(t, f); len(recs) != 3 {
		t.Fatalf("audit lines %d", len(recs))
	}
}

func TestHistoryPrune(t *testing.T) {
	f := newFixture(t)
	for i := range 8 {
		if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good "+string(rune('a'+i))+"\n")}); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := f.r.History()
	if len(es) != f.s.HistoryKeep {
		t.Fatalf("kept %d, want %d", len(es), f.s.HistoryKeep)
	}
	blobs, _ := os.ReadDir(f.r.store.blobDir())
	if len(blobs) != f.s.HistoryKeep+1 {
		t.Fatalf("blobs %d, want %d", len(blobs), f.s.HistoryKeep+1)
	}
}

func TestRollbackTo(t *testing.T) {
	f := newFixture(t)
	for _, body := range []string{"good v2\n", "good v3\n"} {
		if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, body)}); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := f.r.History()
	if _, err := f.r.RollbackTo(context.Background(), "", Options{}); err != nil || f.disk(t) != "good v2\n" {
		t.Fatalf("rollback last: %v disk %q", err, f.disk(t))
	}
	if _, err := f.r.RollbackTo(context.Background(), es[0].ID, Options{}); err != nil || f.disk(t) != "good v1\n" {
		t.Fatalf("rollback %s: %v disk %q", es[0].ID, err, f.disk(t))
	}
	es, _ = f.r.History()
	if !strings.HasPrefix(es[len(es)-1].Reason, "rollback of ") {
		t.Fatalf("reason %q", es[len(es)-1].Reason)
	}
	if _, err := f.r.RollbackTo(context.Background(), "nope", Options{}); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("unknown id: %v", err)
	}
}

func auditLines(t *testing.T, f *fixture) []AuditRecord {
	t.Helper()
	fh, err := os.Open(filepath.Join(f.s.StateDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []AuditRecord
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// flakyMaster refuses the first n calls, like a master re-executing
// after someone else's reload.
type flakyMaster struct {
	*world
	n int
}

func (m *flakyMaster) ShowProc(ctx context.Context) (Generation, error) {
	if m.n > 0 {
		m.n--
		return Generation{}, errors.New("dial unix /run/haproxy-master.sock: connect: connection refused")
	}
	return m.world.ShowProc(ctx)
}

func TestMasterBusyAtStartIsWaitedFor(t *testing.T) {
	f := newFixture(t)
	d := f.w.deps()
	d.Master = &flakyMaster{world: f.w, n: 3}
	r, _ := New(f.s, d)
	if _, err := r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")}); err != nil {
		t.Fatalf("a master that answers after 3 refusals: %v", err)
	}
	d.Master = &flakyMaster{world: f.w, n: 1 << 30}
	s := f.s
	s.SettleTimeout = 200 * time.Millisecond
	r, _ = New(s, d)
	if _, err := r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v3\n")}); !errors.Is(err, ErrRefused) {
		t.Fatalf("a master that never answers: %v, want ErrRefused", err)
	}
}

// busyAfterFailMaster refuses once, on the second look after a failed
// load: the rollback's first look, while the master re-executes.
type busyAfterFailMaster struct {
	*world
	seen int
}

func (m *busyAfterFailMaster) ShowProc(ctx context.Context) (Generation, error) {
	g, err := m.world.ShowProc(ctx)
	if err == nil && g.Failed > 0 {
		m.seen++
		if m.seen == 2 {
			return Generation{}, errors.New("dial unix /run/haproxy-master.sock: connect: connection refused")
		}
	}
	return g, err
}

// The rollback settles against the generation it starts from. A master
// busy for a moment at that point must be waited for, not taken as
// "nothing known": compared with zero counters, the earlier failed load
// reads as a failure of the rollback's own reload, and a clean rollback
// becomes "host left in a bad state".
func TestRollbackWaitsForBusyMaster(t *testing.T) {
	f := newFixture(t)
	f.w.failLoad = "badbind"
	d := f.w.deps()
	d.Master = &busyAfterFailMaster{world: f.w}
	r, _ := New(f.s, d)
	res, err := r.Run(context.Background(), Options{Candidate: f.candidate(t, "badbind 10.99.99.99:80\n")})
	if !errors.Is(err, ErrRolledBack) || errors.Is(err, ErrBroken) || !res.RolledBack {
		t.Fatalf("err %v, want a clean rollback; stages %+v", err, res.Stages)
	}
	if f.disk(t) != "good v1\n" {
		t.Fatalf("disk %q", f.disk(t))
	}
}

// The lock file outlives its holder and names a pid that may be dead
// (after a SIGKILL), which invites an operator to delete it. Deleting it
// must not let a second run in while the first still holds the lock.
func TestLockSurvivesDeletedLockFile(t *testing.T) {
	f := newFixture(t)
	lk, err := acquireLock(context.Background(), f.s.StateDir, false, 0, "pid 1 since then", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.release()
	if err := os.Remove(filepath.Join(f.s.StateDir, "lock")); err != nil {
		t.Fatal(err)
	}
	lk2, err := acquireLock(context.Background(), f.s.StateDir, false, 0, "pid 2", nil)
	if err == nil {
		lk2.release()
		t.Fatal("a second run took the lock after its file was deleted")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err %v, want ErrLocked", err)
	}
}

// swapChecker rewrites the candidate just before the check reads it: an
// editor saving the file while haguard runs.
type swapChecker struct {
	*world
	path, body string
}

func (c swapChecker) Check(ctx context.Context, req CheckRequest) (CheckReport, error) {
	if err := os.WriteFile(c.path, []byte(c.body), 0o600); err != nil {
		return CheckReport{}, err
	}
	return c.world.Check(ctx, req)
}

// The bytes installed are the bytes checked: a candidate that changes
// while the check runs is refused, never installed unchecked.
func TestCandidateChangedDuringCheckIsRefused(t *testing.T) {
	f := newFixture(t)
	cand := f.candidate(t, "syntax error\n")
	d := f.w.deps()
	d.Checker = swapChecker{world: f.w, path: cand, body: "good v2\n"}
	r, _ := New(f.s, d)
	res, err := r.Run(context.Background(), Options{Candidate: cand})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("err %v, want ErrRefused; stages %+v", err, res.Stages)
	}
	if f.disk(t) != "good v1\n" || f.w.reloads != 0 {
		t.Fatalf("disk %q, %d reload jobs", f.disk(t), f.w.reloads)
	}
}
