package reload

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// rollback restores the snapshot after a failure past install, reloads,
// and verifies again (settle + probe). It runs on a context that outlives
// a cancelled parent (SIGTERM must not stop a rollback halfway), bounded
// by its own timeout.
func (t *txn) rollback(ctx context.Context, sum string, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.rollbackTimeout())
	defer cancel()
	err := t.stage(rctx, StageRollback, func() (string, error) { return t.restore(rctx, sum) })
	if err != nil {
		t.res.Broken = true
		return fmt.Errorf("%w: rollback failed: %w (after: %w)", ErrBroken, err, cause)
	}
	t.res.RolledBack = true
	if errors.Is(cause, ErrBroken) {
		return fmt.Errorf("%w: rolled back, but: %w", ErrBroken, cause)
	}
	return fmt.Errorf("%w: %w", ErrRolledBack, cause)
}

// rollbackTimeout bounds a rollback that no longer listens to its
// caller's cancellation.
func (t *txn) rollbackTimeout() time.Duration { return 3*t.r.s.SettleTimeout + time.Minute }

// restore installs blob sum, reloads, settles and probes. It records the
// restored config as running.
func (t *txn) restore(ctx context.Context, sum string) (string, error) {
	if sum == "" {
		return "", errNoSnapshot
	}
	data, err := t.r.st.blob(sum)
	if err != nil {
		return "", err
	}
	if t.journal.ID != "" {
		t.journal.Stage = StageRollback
		if err := t.r.st.writeJournal(t.journal); err != nil {
			return "", err
		}
	}
	if _, err := writeAtomic(t.r.s.Target, data, 0o644); err != nil {
		return "", fmt.Errorf("restore %s: %w", t.r.s.Target, err)
	}
	// Settle compares against the baseline, so a master busy for a moment (it
	// re-executes after the reload that failed) is waited for like in the
	// check stage: zero counters would turn an earlier failed load into a
	// failure of this reload. A master that stays unreadable (haproxy
	// died) is not fatal here: the reload may bring it back, and settle
	// then only asks for workers.
	b, _ := t.readBaseline(ctx)
	if err := t.reloadAndSettle(ctx, b, true); err != nil {
		return "", fmt.Errorf("restored %s but: %w", short(sum), err)
	}
	g := t.res.Generation
	detail := fmt.Sprintf("restored sha256 %s; %s", short(sum), settleDetail(*g, t.r.d.Now()))
	if t.r.s.Probe {
		rep, err := t.r.d.Prober.Probe(ctx)
		if err != nil {
			return detail, fmt.Errorf("probe after rollback: %w", err)
		}
		detail += fmt.Sprintf("; probes: %d/%d OK", rep.OK, rep.Total)
		if rep.Failed > 0 {
			return detail, fmt.Errorf("%d of %d probes still fail after rollback%s", rep.Failed, rep.Total, firstProbeError(rep))
		}
	}
	if err := t.r.st.setRunning(Running{SHA256: sum, Target: t.r.s.Target, MasterPID: g.MasterPID,
		Reloads: g.Reloads, Time: t.r.d.Now().UTC(), ID: t.res.ID}); err != nil {
		return detail, err
	}
	return detail, nil
}

// recoverFrom finishes what a dead run left: a journal means it died
// holding the lock. Before install nothing changed; after install the
// target may hold an unverified candidate, so the rollback is completed.
func (t *txn) recoverFrom(ctx context.Context, j Journal) error {
	err := t.stage(ctx, StageRecover, func() (string, error) {
		what := fmt.Sprintf("transaction %s (pid %d) died at stage %s", j.ID, j.PID, j.Stage)
		switch {
		case t.opt.ForgetInterrupted:
			disk := "unreadable"
			if b, rerr := readFileOrNil(j.Target); rerr == nil {
				disk = short(sha(b))
			}
			t.markEntry(j.ID, OutcomeBroken)
			return fmt.Sprintf("%s; forgotten on request (installed: %v): %s holds sha256 %s, candidate %s, snapshot %s",
				what, j.Installed, j.Target, disk, short(j.CandidateSHA256), short(j.RollbackSHA256)), t.r.st.clearJournal()
		case !j.Installed:
			t.markEntry(j.ID, OutcomeRefused)
			return what + " before install; nothing was changed", t.r.st.clearJournal()
		case j.Stage == stageCommit:
			t.markEntry(j.ID, OutcomeCommitted)
			return what + " after commit; nothing to do", t.r.st.clearJournal()
		}
		if j.Target != t.r.s.Target {
			// Another haproxy sharing this state dir: restoring here would
			// write its snapshot over our config, and reload the wrong unit.
			return "", fmt.Errorf("%s after install, for %s, not this run's %s: run haguard with that config to complete its rollback",
				what, j.Target, t.r.s.Target)
		}
		saved := t.journal
		t.journal = j
		// Completing the rollback is a rollback: a SIGTERM must not stop
		// it halfway (see rollback).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.rollbackTimeout())
		defer cancel()
		detail, err := t.restore(rctx, j.RollbackSHA256)
		t.journal = saved
		if err != nil {
			disk := "unreadable"
			if b, rerr := readFileOrNil(j.Target); rerr == nil {
				disk = short(sha(b))
			}
			return "", fmt.Errorf("%s after install; %s holds sha256 %s (candidate %s, snapshot %s); completing the rollback failed: %w",
				what, j.Target, disk, short(j.CandidateSHA256), short(j.RollbackSHA256), err)
		}
		t.markEntry(j.ID, OutcomeRecovered)
		return what + " after install; rolled back: " + detail, t.r.st.clearJournal()
	})
	if err != nil {
		t.res.Broken = true
		return fmt.Errorf("%w: recover: %w", ErrBroken, err)
	}
	return nil
}

func (t *txn) markEntry(id, outcome string) {
	e, err := t.r.st.entry(id)
	if err != nil {
		return
	}
	e.Outcome = outcome
	if err := t.r.st.putEntry(e); err != nil {
		t.r.log.Warn("history entry", "id", id, "err", err)
	}
}
