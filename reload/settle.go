package reload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/haguard/haguard/internal/async"
)

// pollEvery is how long to wait before asking the master again, after
// waiting for elapsed. A small config re-executes in some 60 ms, during
// which the master refuses connections (free to retry); polling every 5 ms
// for the first seconds keeps settle within a few ms of the new
// generation, and a long reload (a large config) is then asked less often.
func pollEvery(elapsed time.Duration) time.Duration {
	if elapsed < 2*time.Second {
		return 5 * time.Millisecond
	}
	return 25 * time.Millisecond
}

// baseline is the unit as it was before a reload: the master's generation
// and the unit's StatusText, which settle compares against.
type baseline struct {
	gen    Generation
	status string // "" when systemd could not be asked
	// servers are the backends' servers before the reload (nil when
	// they could not be read).
	servers []ServerHealth
	// learned is the prober's look at the listeners (nil: none).
	learned ProbeBaseline
}

// readBaseline reads the generation (waiting out a busy master, see
// currentGeneration) and, at the same time, the unit's status.
func (t *txn) readBaseline(ctx context.Context) (baseline, error) {
	status := async.Go(func() string { return t.unitStatus(ctx) })
	servers := async.Go(func() []ServerHealth {
		s, err := t.deps.Prober.Health(ctx)
		if err != nil {
			t.log.Debug("backend health before the reload", "err", err)
		}
		return s
	})
	learned := async.Go(func() ProbeBaseline {
		if !t.settings.Probe {
			return nil
		}
		b, err := t.deps.Prober.Learn(ctx)
		if err != nil {
			t.log.Debug("learn the listeners before the reload", "err", err)
		}
		return b
	})
	g, err := t.currentGeneration(ctx)
	return baseline{gen: g, status: status.Wait(), servers: servers.Wait(), learned: learned.Wait()}, err
}

// pendingBaseline is a baseline being read in the background (during the
// check). Exactly one of wait and stop must be called.
type pendingBaseline struct {
	cancel context.CancelFunc
	read   *async.Task[baselineRead]
}

type baselineRead struct {
	b   baseline
	err error
}

func (t *txn) readBaselineAsync(ctx context.Context) pendingBaseline {
	bctx, cancel := context.WithCancel(ctx)
	return pendingBaseline{cancel: cancel, read: async.Go(func() baselineRead {
		b, err := t.readBaseline(bctx)
		return baselineRead{b, err}
	})}
}

func (p pendingBaseline) wait() (baseline, error) {
	defer p.cancel()
	r := p.read.Wait()
	return r.b, r.err
}

func (p pendingBaseline) stop() {
	p.cancel()
	p.read.Wait()
}

func (t *txn) unitStatus(ctx context.Context) string {
	st, err := t.deps.Unit.UnitState(ctx, t.settings.Unit)
	if err != nil {
		return ""
	}
	return st.StatusText
}

// currentGeneration reads `show proc`, retrying for up to the settle
// timeout: right after a reload made by someone else the master is
// re-executing and refuses connections (or answers nothing) for a moment.
func (t *txn) currentGeneration(ctx context.Context) (Generation, error) {
	wctx, cancel := context.WithTimeout(ctx, t.settings.SettleTimeout)
	defer cancel()
	begin := t.now()
	asked := false
	for {
		g, err := t.deps.Master.ShowProc(wctx)
		if err == nil {
			return g, nil
		}
		t.prog.waitingFor("haproxy's master CLI to answer (up to %s): %v", t.settings.SettleTimeout, err)
		if !asked {
			// A stopped haproxy will not answer: say so now, not after
			// the settle timeout.
			asked = true
			st, uerr := t.deps.Unit.UnitState(wctx, t.settings.Unit)
			switch {
			case uerr != nil:
			case st.ActiveState == "inactive" || st.ActiveState == "failed":
				return Generation{}, fmt.Errorf("unit %s is %s, haproxy is not running (%w); start it first: systemctl start %s",
					t.settings.Unit, st.ActiveState, err, t.settings.Unit)
			case st.ActiveState == "active" && errors.Is(err, syscall.ENOENT):
				// A running master keeps its socket in place across its
				// re-executions: a missing one will not come back by waiting.
				return Generation{}, fmt.Errorf("unit %s is active (%s, main pid %d), but its master CLI socket does not exist (%w): "+
					"it was removed, or haproxy was started without it; a restart recreates it: systemctl restart %s",
					t.settings.Unit, st.SubState, st.MainPID, err, t.settings.Unit)
			}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return Generation{}, ctx.Err()
			}
			return Generation{}, err
		case <-time.After(pollEvery(t.now().Sub(begin))):
		}
	}
}

// reloadAndSettle runs the reload and settle stages.
func (t *txn) reloadAndSettle(ctx context.Context, b baseline) error {
	if err := t.stage(ctx, StageReload, func() (string, error) { return t.reloadUnit(ctx) }); err != nil {
		return err
	}
	return t.stage(ctx, StageSettle, func() (string, error) {
		s, err := t.settle(ctx, b)
		if err != nil {
			return "", err
		}
		t.res.Settle = s
		return s.detail(), nil
	})
}

// checkRace re-hashes the config set once the new generation has settled:
// haproxy loaded what was on disk when it re-executed, so a set that is
// not the one installed (edited during the transaction) means haguard
// cannot say which version runs. The edited files are kept in history;
// the error (ErrRaced) names both identities.
func (t *txn) checkRace(p plan) error {
	installed := p.manifest()
	refs := make([]string, 0, len(installed))
	for _, e := range installed {
		if e.Ref {
			refs = append(refs, e.Path)
		}
	}
	now := manifestOf(expandFiles(t.settings.Files, nil), refs, os.ReadFile)
	if now.Identity() == installed.Identity() {
		return nil
	}
	race := &Race{Installed: installed.Identity(), OnDisk: now.Identity(), Files: installed.Diff(now)}
	var kept []KeptFile
	for _, path := range race.Files {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // deleted: nothing to keep
		}
		sum, err := t.store.putBlob(b)
		if err != nil {
			t.unrecorded(fmt.Errorf("keep %s, edited during the transaction: %w", path, err))
			continue
		}
		kept = append(kept, KeptFile{Path: path, SHA256: sum})
	}
	t.recordKept(kept)
	t.res.Raced = race
	return fmt.Errorf("%w: installed %s, on disk after settle %s (%s); haproxy loaded one of the two, so neither is recorded as running; "+
		"both are kept in history: run 'haguard reload' to verify and record what is on disk", ErrRaced,
		short(race.Installed), short(race.OnDisk), strings.Join(race.Files, ", "))
}

// reloadQuietly is reloadAndSettle without stage records, for a rollback.
func (t *txn) reloadQuietly(ctx context.Context, b baseline) (*SettleResult, error) {
	if _, err := t.reloadUnit(ctx); err != nil {
		return nil, err
	}
	return t.settle(ctx, b)
}

func (t *txn) reloadUnit(ctx context.Context) (string, error) {
	if err := t.deps.Reload.Reload(ctx, t.settings.Unit); err != nil {
		return "", fmt.Errorf("reload %s: %w", t.settings.Unit, err)
	}
	if t.opt.InReloadJob {
		return "master signalled from the unit's own reload job", nil
	}
	return "reload job done", nil
}

// settle waits for proof that the new config runs. A job result "done"
// proves nothing (a reload whose config fails to load still ends "done"),
// so success needs all of: the master's reload counter went up, its failed
// counter did not, the master is the same process, the current workers are
// all new, the unit is no longer reloading, and its StatusText did not
// turn to "failed" (b was read before the reload was asked for).
//
// "No longer reloading" matters from HAProxy 3.1 on: the master lists the
// new worker under "# workers" as soon as it is forked, while that worker
// is still loading the config, and counts the failure only once the load
// failed. The master brackets a reload with sd_notify RELOADING=1 (sent
// before the fork) and READY=1 (after the load, with "Reload failed!" on
// failure), so systemd shows the unit "reloading" until the outcome is
// known. systemd handles its notify socket before bus requests, so the
// state read after the new worker was seen cannot miss RELOADING=1; show
// proc is then read once more, to take the counters after the outcome.
func (t *txn) settle(ctx context.Context, b baseline) (*SettleResult, error) {
	sctx, cancel := context.WithTimeout(ctx, t.settings.SettleTimeout)
	defer cancel()
	w := settleWatch{txn: t, before: b}
	begin := t.now()
	for {
		done, err := w.poll(ctx, sctx)
		if err != nil {
			return nil, err
		}
		if done {
			t.gen = &w.last
			return settleResult(w.last, t.now()), nil
		}
		select {
		case <-sctx.Done():
			return nil, w.timeout(ctx)
		case <-time.After(pollEvery(t.now().Sub(begin))):
		}
	}
}

// settleWatch is settle's view of the master between polls.
type settleWatch struct {
	*txn
	before    baseline
	last      Generation
	lastErr   error
	reloading bool
}

// poll reads the master (and, once the generation looks new, the unit)
// once. done means the new generation is confirmed; an error ends settle.
func (w *settleWatch) poll(ctx, sctx context.Context) (done bool, err error) {
	g, ok, err := w.showProc(ctx, sctx)
	switch {
	case err != nil:
		return false, err
	case !ok:
		w.prog.waitingFor("haproxy's master CLI to answer (it re-executes after a reload): %v", w.lastErr)
		return false, nil
	case !w.looksNew(g):
		w.prog.waitingFor("%s", w.awaiting(g))
		return false, nil
	}
	st, err := w.deps.Unit.UnitState(sctx, w.settings.Unit)
	if err != nil {
		return false, fmt.Errorf("read unit state: %w", err)
	}
	if st.ActiveState == "failed" {
		return false, fmt.Errorf("%w: unit %s is failed: %s", ErrBroken, w.settings.Unit, st.StatusText)
	}
	if statusFailed(st.StatusText) && !statusFailed(w.before.status) {
		return false, fmt.Errorf("unit status says %q%s", st.StatusText, w.startupLogs(ctx))
	}
	// Inside the unit's own reload job (haguard exec-reload) the unit is
	// "reloading" until that job, this run, ends: the counters decide.
	if w.reloading = st.ActiveState == "reloading" && !w.opt.InReloadJob; w.reloading {
		w.prog.waitingFor("haproxy to finish loading the new config (unit %s is reloading)", w.settings.Unit)
		return false, nil
	}
	// The outcome is known: confirm it with counters read after it.
	g2, ok, err := w.showProc(ctx, sctx)
	return ok && err == nil && w.looksNew(g2), err
}

// showProc reads the master once. ok is false when it did not answer (the
// error is kept for the timeout message); the error is a generation that
// rules the reload out.
func (w *settleWatch) showProc(ctx, sctx context.Context) (Generation, bool, error) {
	g, err := w.deps.Master.ShowProc(sctx)
	if w.lastErr = err; err != nil {
		return Generation{}, false, nil
	}
	w.last = g
	return g, true, w.badGeneration(ctx, g)
}

// looksNew: the counter moved (when the master keeps one) and every
// current worker is new. A master that had a counter before the reload
// keeps one: a read without it (-1, its environment caught mid-exec)
// never passes the old count, so the next poll reads again.
func (w *settleWatch) looksNew(g Generation) bool {
	before := w.before.gen.Reloads
	return (before < 0 || g.Reloads > before) && newWorkersUp(w.before.gen, g)
}

// awaiting says what a generation that does not look new yet lacks.
func (w *settleWatch) awaiting(g Generation) string {
	before := w.before.gen
	switch {
	case before.Reloads >= 0 && g.Reloads < 0:
		return fmt.Sprintf("the master's reload counter (it was %d before the reload; unreadable now)", before.Reloads)
	case before.Reloads >= 0 && g.Reloads <= before.Reloads:
		return fmt.Sprintf("the master's reload counter to pass %d (now %d)", before.Reloads, g.Reloads)
	}
	return fmt.Sprintf("a new generation of workers (current: %s; before the reload: %s)", workerPIDs(g.Workers), workerPIDs(before.Workers))
}

func workerPIDs(ws []Worker) string {
	if len(ws) == 0 {
		return "none"
	}
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("pid %d", w.PID)
	}
	return strings.Join(parts, ", ")
}

// badGeneration is a show proc that rules the reload out: another master
// (a restart, not a reload) or a failed load.
func (w *settleWatch) badGeneration(ctx context.Context, g Generation) error {
	before := w.before.gen
	if before.MasterPID != 0 && g.MasterPID != before.MasterPID {
		return fmt.Errorf("master restarted (pid %d -> %d): this was not a reload", before.MasterPID, g.MasterPID)
	}
	if before.Failed >= 0 && g.Failed > before.Failed {
		return fmt.Errorf("master reports a failed reload (failed %d -> %d); the old workers keep serving the old config%s",
			before.Failed, g.Failed, w.startupLogs(ctx))
	}
	return nil
}

// timeout is settle's error when the settle timeout ran out.
func (w *settleWatch) timeout(ctx context.Context) error {
	timeout, before, last := w.settings.SettleTimeout, w.before.gen, w.last
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if why := w.stuck(); why != "" {
		return fmt.Errorf("%w: %s. It loads no config until it is restarted (haproxy issue #3229: on 3.2, after a worker failed to start, "+
			"the master could keep SIGUSR2 pending and never re-execute). Remedy: `systemctl restart %s` at a quiet moment "+
			"(it closes every connection), then upgrade haproxy; the config on disk was put back as it was",
			ErrStuckMaster, why, w.settings.Unit)
	}
	switch {
	case w.lastErr != nil:
		return fmt.Errorf("no new generation within %s: master CLI: %w", timeout, w.lastErr)
	case w.reloading:
		return fmt.Errorf("no outcome within %s: unit %s still reloading (reloads %d -> %d, %d new workers up)%s",
			timeout, w.settings.Unit, before.Reloads, last.Reloads, len(last.Workers), w.startupLogs(ctx))
	}
	return fmt.Errorf("no new generation within %s: reloads %d -> %d, %d workers up%s",
		timeout, before.Reloads, last.Reloads, len(last.Workers), w.startupLogs(ctx))
}

// stuck says why the master never took the reload ("" when nothing says
// so): it keeps SIGUSR2 pending, or it answers, is not reloading, and its
// reload counter (or, without one, its set of workers) never moved.
func (w *settleWatch) stuck() string {
	before, last := w.before.gen, w.last
	pid := before.MasterPID
	if pid == 0 || last.MasterPID != 0 && last.MasterPID != pid {
		return "" // unknown, or another master: not this one stuck
	}
	if w.deps.Signals != nil {
		if pending, err := w.deps.Signals.ReloadPending(pid); err == nil && pending {
			return fmt.Sprintf("master pid %d has SIGUSR2 (reload) pending %s after the reload: it never took it", pid, w.settings.SettleTimeout)
		}
	}
	if w.lastErr != nil || w.reloading {
		return ""
	}
	if before.Reloads >= 0 && last.Reloads >= 0 {
		if last.Reloads == before.Reloads && !newWorkersUp(before, last) {
			return fmt.Sprintf("master pid %d never took the reload: its reload counter is still %d after %s, no new worker", pid, last.Reloads, w.settings.SettleTimeout)
		}
		return ""
	}
	if sameWorkers(before, last) {
		return fmt.Sprintf("master pid %d never took the reload: the same workers after %s, none new", pid, w.settings.SettleTimeout)
	}
	return ""
}

func sameWorkers(a, b Generation) bool {
	if len(a.Workers) != len(b.Workers) || len(a.Workers) == 0 {
		return false
	}
	for i := range a.Workers {
		if a.Workers[i].PID != b.Workers[i].PID {
			return false
		}
	}
	return true
}

// newWorkersUp: at least one current worker, and none of them was a
// current worker before the reload.
func newWorkersUp(before, after Generation) bool {
	if len(after.Workers) == 0 {
		return false
	}
	old := map[int]bool{}
	for _, w := range before.Workers {
		old[w.PID] = true
	}
	for _, w := range after.Workers {
		if old[w.PID] {
			return false
		}
	}
	return true
}

func statusFailed(s string) bool { return strings.Contains(strings.ToLower(s), "fail") }

// detail is the settle stage's one-line summary.
func (s *SettleResult) detail() string {
	d := fmt.Sprintf("generation %d running (%d workers)", s.Generation, s.Workers)
	if s.OldWorkers > 0 {
		return d + fmt.Sprintf("; old generation draining (%d workers, since %s)", s.OldWorkers, s.OldestDraining.Format(time.RFC3339))
	}
	return d + "; no old workers draining"
}

// startupLogs returns haproxy's own words about the failed load, prefixed
// for appending to an error, or "".
func (t *txn) startupLogs(ctx context.Context) string {
	if t.deps.Logs == nil {
		return ""
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	s, err := t.deps.Logs.StartupLogs(lctx)
	if err != nil || strings.TrimSpace(s) == "" {
		return ""
	}
	return ": haproxy says: " + lastLines(s, 5)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

var errNoSnapshot = errors.New("no snapshot to roll back to")
