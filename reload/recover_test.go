package reload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// crashAt runs a transaction and captures the state dir and the target as
// they were when the stage began: exactly what a SIGKILL there leaves.
// Then it puts that state back, as if the process had died.
func crashAt(t *testing.T, f *fixture, stage, body string) {
	t.Helper()
	var saved map[string][]byte
	deps := f.w.deps()
	deps.Pause = func(_ context.Context, s string) {
		if s == stage && saved == nil {
			saved = snapshotFiles(t, f)
		}
	}
	r, err := New(f.s, deps)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = r.Run(context.Background(), Options{Candidate: f.candidate(t, body)})
	if saved == nil {
		t.Fatalf("never reached stage %s", stage)
	}
	restoreFiles(t, f, saved)
}

func snapshotFiles(t *testing.T, f *fixture) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(f.dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.Contains(p, "/cand-") {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func restoreFiles(t *testing.T, f *fixture, saved map[string][]byte) {
	t.Helper()
	now := snapshotFiles(t, f)
	for p := range now {
		if _, ok := saved[p]; !ok {
			os.Remove(p)
		}
	}
	for p, b := range saved {
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecoverAfterCrashInSettle(t *testing.T) {
	f := newFixture(t)
	// The candidate is bad, and the run dies before settle could notice:
	// the master runs the dead-backend config and the target holds it.
	crashAt(t, f, StageSettle, "dead backend\n")
	if f.disk(t) != "dead backend\n" {
		t.Fatalf("setup: disk %q", f.disk(t))
	}
	if _, err := f.r.store.journal(); err != nil {
		t.Fatalf("setup: no journal: %v", err)
	}
	res, err := f.r.Run(context.Background(), Options{})
	if res.Stages[0].Name != StageRecover || !res.Stages[0].OK {
		t.Fatalf("first stage %+v", res.Stages[0])
	}
	if d := res.Stages[0].Detail; !strings.Contains(d, "died at stage settle after install; rolled back") {
		t.Fatalf("recover detail %q", d)
	}
	if f.disk(t) != "good v1\n" || string(f.w.loaded) != "good v1\n" {
		t.Fatalf("not recovered: disk %q loaded %q", f.disk(t), f.w.loaded)
	}
	// The in-place reload that follows finds the restored config running.
	if !errors.Is(err, ErrUnchanged) || !res.OK {
		t.Fatalf("err %v ok %v", err, res.OK)
	}
	if _, err := f.r.store.journal(); !os.IsNotExist(err) {
		t.Fatalf("journal still there: %v", err)
	}
	es, _ := f.r.History()
	if es[0].Outcome != OutcomeRecovered {
		t.Fatalf("dead run's entry %+v", es[0])
	}
}

func TestRecoverBeforeInstallChangesNothing(t *testing.T) {
	f := newFixture(t)
	crashAt(t, f, StageInstall, "good v2\n")
	// Died at the end of the snapshot stage: the journal exists but says
	// nothing was installed yet.
	j, err := f.r.store.journal()
	if err != nil || !j.Installed || f.disk(t) != "good v1\n" {
		t.Fatalf("setup: %+v %v", j, err)
	}
	j.Installed, j.Stage = false, StageSnapshot
	if err := f.r.store.writeJournal(j); err != nil {
		t.Fatal(err)
	}
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v3\n")})
	if err != nil {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(res.Stages[0].Detail, "before install; nothing was changed") {
		t.Fatalf("recover %+v", res.Stages[0])
	}
	if f.w.reloads != 2 { // the dead run's own, plus this one; no recovery reload
		t.Fatalf("reload jobs %d", f.w.reloads)
	}
}

func TestRecoverFailureIsBroken(t *testing.T) {
	f := newFixture(t)
	crashAt(t, f, StageProbe, "good v2\n")
	f.w.jobErr = errJob
	res, err := f.r.Run(context.Background(), Options{})
	if !errors.Is(err, ErrBroken) || !res.Broken || !strings.Contains(res.Stages[0].Error, "holds sha256") {
		t.Fatalf("err %v stages %+v", err, res.Stages)
	}
	if _, err := f.r.store.journal(); err != nil {
		t.Fatalf("journal must survive for the next try: %v", err)
	}
}

func TestStatusDrift(t *testing.T) {
	f := newFixture(t)
	st, err := f.r.Status(context.Background(), true)
	if err != nil || !st.Drift || !strings.Contains(st.DriftReason, "not reloaded this haproxy yet") {
		t.Fatalf("fresh: %+v %v", st, err)
	}
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")}); err != nil {
		t.Fatal(err)
	}
	st, _ = f.r.Status(context.Background(), true)
	if st.Drift || st.RunningSHA256 != st.DiskSHA256 || st.Generation != 1 || st.OldWorkers != 1 {
		t.Fatalf("after commit: %+v", st)
	}
	if err := os.WriteFile(f.target, []byte("edited by hand\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	st, _ = f.r.Status(context.Background(), true)
	if !st.Drift || !strings.Contains(st.DriftReason, "edited without a reload") {
		t.Fatalf("edited: %+v", st)
	}
	_ = f.w.Reload(context.Background(), "haproxy.service") // systemctl reload behind haguard's back
	st, _ = f.r.Status(context.Background(), true)
	if !st.Drift || !strings.Contains(st.DriftReason, "outside haguard") {
		t.Fatalf("outside reload: %+v", st)
	}
}

// A master read from the process table carries its reload counter in
// its environment, which reads as empty while it re-executes (3.0 does
// so once more right after forking the new worker). Settle must not take
// that read as the new generation: the record would hold no counter,
// and the next status would see the counter as a reload behind
// haguard's back.
func TestCounterCaughtMidExec(t *testing.T) {
	f := newFixture(t)
	f.w.master.Reloads = 4
	f.w.counterGaps = 2
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")}); err != nil {
		t.Fatal(err)
	}
	run, err := f.r.store.running()
	if err != nil || run.Reloads != 5 {
		t.Fatalf("recorded %+v (%v): want the counter read after the reload, 5", run, err)
	}
	st, _ := f.r.Status(context.Background(), true)
	if st.Drift {
		t.Fatalf("status after the reload: drift %q", st.DriftReason)
	}
	// A status read that itself lands mid-exec is the same generation:
	// the same master with the same current worker.
	f.w.gapsLeft = 1
	if st, _ = f.r.Status(context.Background(), true); st.Drift {
		t.Fatalf("status without the counter: drift %q", st.DriftReason)
	}
}

// While the unit is reloading the master re-executes and refuses its CLI:
// status waits for the reload to end and reports its outcome, not the
// transition (an unreadable master, a unit not "active").
func TestStatusWaitsForAReloadInProgress(t *testing.T) {
	f := newFixture(t)
	f.w.unitReloading = 3
	st, err := f.r.Status(context.Background(), true)
	if err != nil || st.ActiveState != "active" || st.Generation != 0 || len(st.Errors) != 0 || f.w.unitReloading != 0 {
		t.Fatalf("after the reload: %+v %v (reloading reads left %d)", st, err, f.w.unitReloading)
	}
	// Without waiting (the API), the transition is reported as it is.
	f.w.unitReloading = 3
	st, _ = f.r.Status(context.Background(), false)
	if st.ActiveState != "reloading" || st.Generation != -1 || len(st.Errors) != 1 {
		t.Fatalf("no wait: %+v", st)
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrote, err := writeAtomic(p, []byte("a"), 0o644)
	if err != nil || wrote {
		t.Fatalf("identical bytes: wrote %v err %v", wrote, err)
	}
	wrote, err = writeAtomic(p, []byte("b"), 0o644)
	if err != nil || !wrote {
		t.Fatalf("new bytes: wrote %v err %v", wrote, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
}

func TestForgetInterrupted(t *testing.T) {
	f := newFixture(t)
	crashAt(t, f, StageProbe, "good v2\n")
	f.w.jobErr = errJob
	if _, err := f.r.Run(context.Background(), Options{}); !errors.Is(err, ErrBroken) {
		t.Fatalf("setup: %v", err)
	}
	f.w.jobErr = nil
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v3\n"), ForgetInterrupted: true})
	if err != nil || !strings.Contains(res.Stages[0].Detail, "forgotten on request") {
		t.Fatalf("err %v stages %+v", err, res.Stages)
	}
	if f.disk(t) != "good v3\n" {
		t.Fatalf("disk %q", f.disk(t))
	}
}

// A target edited by hand without a reload (drift) is replaced by a
// candidate: the edited bytes are not what runs, so they are not the
// rollback snapshot, but they must still be recoverable from history, and
// pruning must keep them while the entry that replaced them is kept.
func TestInstallOverDriftKeepsTheEditedFile(t *testing.T) {
	f := newFixture(t)
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")}); err != nil {
		t.Fatal(err)
	}
	edited := []byte("edited by hand\n")
	if err := os.WriteFile(f.target, edited, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v3\n")}); err != nil {
		t.Fatal(err)
	}
	if f.disk(t) != "good v3\n" {
		t.Fatalf("disk %q", f.disk(t))
	}
	es, _ := f.r.History()
	last := es[len(es)-1]
	if last.BeforeSHA256 != sha([]byte("good v2\n")) {
		t.Fatalf("rollback snapshot %s, want the running good v2", short(last.BeforeSHA256))
	}
	if last.ReplacedSHA256 != sha(edited) {
		t.Fatalf("replaced_sha256 %q, want the edited file's", short(last.ReplacedSHA256))
	}
	if err := f.r.store.prune(f.s.HistoryKeep); err != nil {
		t.Fatal(err)
	}
	if b, err := f.r.store.blob(sha(edited)); err != nil || string(b) != string(edited) {
		t.Fatalf("the edited file is lost: %q %v", b, err)
	}
}

// Two haproxy instances can share a state dir (running.json records its
// target for that reason). A run for instance B that finds instance A's
// journal must not restore A's snapshot over B's config: that would replace
// B's file with bytes that were never B's, and with no snapshot of B's.
func TestRecoverNeverWritesAnotherTarget(t *testing.T) {
	f := newFixture(t)
	crashAt(t, f, StageSettle, "dead backend\n")
	other := filepath.Join(f.dir, "other.cfg")
	if err := os.WriteFile(other, []byte("other v1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	s := f.s
	s.Files, s.Target = []string{other}, ""
	wb := newWorld(t, other)
	rb, err := New(s, wb.deps())
	if err != nil {
		t.Fatal(err)
	}
	res, err := rb.Run(context.Background(), Options{})
	if b, _ := os.ReadFile(other); string(b) != "other v1\n" {
		t.Fatalf("instance B's config was overwritten with %q (err %v, stages %+v)", b, err, res.Stages)
	}
	if !errors.Is(err, ErrBroken) || !strings.Contains(res.Stages[0].Error, f.target) {
		t.Fatalf("err %v, recover stage %+v: want broken, naming %s", err, res.Stages[0], f.target)
	}
	if wb.reloads != 0 {
		t.Fatalf("instance B was reloaded %d times", wb.reloads)
	}
	if _, err := f.r.store.journal(); err != nil {
		t.Fatalf("A's journal must survive for A's next run: %v", err)
	}
}

// ctxReloader is the fake unit, but a cancelled context stops the job the
// way the D-Bus client does.
type ctxReloader struct{ w *world }

func (c ctxReloader) Reload(ctx context.Context, unit string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.w.Reload(ctx, unit)
}

// A SIGTERM while the next run completes a dead run's rollback must not
// stop it halfway (snapshot on disk, candidate still loaded): the
// recovery is a rollback, and runs to its end like one.
func TestRecoverSurvivesCancel(t *testing.T) {
	f := newFixture(t)
	crashAt(t, f, StageSettle, "dead backend\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deps := f.w.deps()
	deps.Reload = ctxReloader{f.w}
	deps.Pause = func(_ context.Context, s string) {
		if s == StageRecover {
			cancel()
		}
	}
	r, err := New(f.s, deps)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx, Options{})
	if !res.Stages[0].OK || string(f.w.loaded) != "good v1\n" || f.disk(t) != "good v1\n" {
		t.Fatalf("recovery stopped halfway: disk %q loaded %q; err %v; recover %+v", f.disk(t), f.w.loaded, err, res.Stages[0])
	}
	if errors.Is(err, ErrBroken) {
		t.Fatalf("err %v: the host was recovered", err)
	}
}

// A journal that does not parse (a torn write after a power cut) stops
// every run, as it must; --forget-interrupted, the documented escape
// hatch, must get past it too, without a hand edit of the state dir.
func TestForgetUnreadableJournal(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(f.s.StateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.r.store.journalPath(), []byte(`{"id":"2026`), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Run(context.Background(), Options{}); !errors.Is(err, ErrBroken) {
		t.Fatalf("unreadable journal without --forget-interrupted: %v, want ErrBroken", err)
	}
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n"), ForgetInterrupted: true})
	if err != nil || !strings.Contains(res.Stages[0].Detail, "forgotten on request") {
		t.Fatalf("err %v stages %+v", err, res.Stages)
	}
	if f.disk(t) != "good v2\n" {
		t.Fatalf("disk %q", f.disk(t))
	}
}

// A run killed inside writeAtomic leaves its temp file next to the
// target (in /etc/haproxy) or in the state dir. The next run, holding the
// lock, removes them; nothing else is touched.
func TestStaleTempFilesRemoved(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Join(f.s.StateDir, "history"), 0o750); err != nil {
		t.Fatal(err)
	}
	stale := []string{
		filepath.Join(f.dir, ".haproxy.cfg.haguard-123456"),
		filepath.Join(f.s.StateDir, ".journal.json.haguard-42"),
		filepath.Join(f.s.StateDir, ".running.json.haguard-7"),
		filepath.Join(f.s.StateDir, "history", ".20261128T000000.000Z-abcd.json.haguard-9"),
	}
	keep := []string{filepath.Join(f.dir, ".other.cfg.haguard-1"), filepath.Join(f.dir, "notes.haguard-1")}
	for _, p := range append(append([]string(nil), stale...), keep...) {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")}); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("stale temp file left: %s (%v)", p, err)
		}
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("not ours, removed: %s (%v)", p, err)
		}
	}
}

// Ctrl-C before the install changed nothing: the run is refused, the
// target is untouched, and no reload at all is issued (installing, then
// rolling back, would reload haproxy twice for a run the operator
// stopped).
func TestCancelBeforeInstallIsRefused(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deps := f.w.deps()
	deps.Reload = ctxReloader{f.w}
	deps.Pause = func(_ context.Context, s string) {
		if s == StageSnapshot {
			cancel()
		}
	}
	r, err := New(f.s, deps)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx, Options{Candidate: f.candidate(t, "good v2\n")})
	if !errors.Is(err, ErrRefused) || !errors.Is(err, context.Canceled) || res.RolledBack {
		t.Fatalf("err %v rolled back %v; stages %+v", err, res.RolledBack, res.Stages)
	}
	if f.disk(t) != "good v1\n" || f.w.reloads != 0 {
		t.Fatalf("disk %q, %d reload jobs", f.disk(t), f.w.reloads)
	}
	if _, err := f.r.store.journal(); !os.IsNotExist(err) {
		t.Fatalf("journal left: %v", err)
	}
}

// A target that is a symlink (config management keeping the real file
// elsewhere) stays a symlink: the install and the rollback replace the
// file it points to, atomically in that file's directory.
func TestInstallThroughSymlink(t *testing.T) {
	f := newFixture(t)
	realDir := filepath.Join(f.dir, "cm")
	if err := os.Mkdir(realDir, 0o750); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(realDir, "haproxy.cfg")
	if err := os.Rename(f.target, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, f.target); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "dead v3\n")}); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err %v, want a rollback", err)
	}
	st, err := os.Lstat(f.target)
	if err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced by a file: %v %v", st.Mode(), err)
	}
	if b, _ := os.ReadFile(real); string(b) != "good v2\n" {
		t.Fatalf("real file holds %q", b)
	}
	if ents, _ := os.ReadDir(realDir); len(ents) != 1 {
		t.Fatalf("temp files left in %s: %v", realDir, ents)
	}
}

// A run killed inside the snapshot stage, after its history entry and
// before its journal, leaves an entry "running" and no journal. It
// installed nothing (the journal is always written before the install),
// so the next run marks it refused instead of leaving it "running" for
// good.
func TestStaleRunningEntryIsClosed(t *testing.T) {
	f := newFixture(t)
	dead := Entry{ID: "20261128T000000.000Z-dead", Target: f.target, BeforeSHA256: sha([]byte("good v1\n")),
		AfterSHA256: sha([]byte("good v2\n")), Outcome: OutcomeRunning}
	if err := f.r.store.putEntry(dead); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v3\n")}); err != nil {
		t.Fatal(err)
	}
	e, err := f.r.store.entry(dead.ID)
	if err != nil || e.Outcome != OutcomeRefused {
		t.Fatalf("dead run's entry %+v %v, want refused", e, err)
	}
}
