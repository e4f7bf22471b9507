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
func (t *txn) rollbackTimeout() time.Duration { return 3*t.settings.SettleTimeout + time.Minute }

// restore installs blob sum, reloads, settles and probes. It records the
// restored config as running.
func (t *txn) restore(ctx context.Context, sum string) (string, error) {
	if sum == "" {
		return "", errNoSnapshot
	}
	data, err := t.store.blob(sum)
	if err != nil {
		return "", err
	}
	if t.journal.ID != "" {
		t.journal.Stage = StageRollback
		if err := t.store.writeJournal(t.journal); err != nil {
			return "", err
		}
	}
	if _, err := writeAtomic(t.settings.Target, data, 0o644); err != nil {
		return "", fmt.Errorf("restore %s: %w", t.settings.Target, err)
	}
	// Settle compares against the baseline, so a master busy for a moment (it
	// re-executes after the reload that failed) is waited for like in the
	// check stage: zero counters would turn an earlier failed load into a
	// failure of this reload. A master that stays unreadable (haproxy
	// died) is not fatal here: the reload may bring it back, and settle
	// then only asks for workers.
	b, _ := t.readBaseline(ctx)
	s, err := t.reloadQuietly(ctx, b)
	if err != nil {
		return "", fmt.Errorf("restored %s but: %w", short(sum), err)
	}
	detail := fmt.Sprintf("restored sha256 %s; %s", short(sum), s.detail())
	if t.settings.Probe {
		// nil: the restored config was not parsed in this run; the prober reads it from disk.
		rep, err := t.deps.Prober.Probe(ctx, nil)
		if err != nil {
			return detail, fmt.Errorf("probe after rollback: %w", err)
		}
		detail += fmt.Sprintf("; probes: %d/%d OK", rep.OK, rep.Total)
		if rep.Failed > 0 {
			return detail, fmt.Errorf("%d of %d probes still fail after rollback%s", rep.Failed, rep.Total, rep.firstError())
		}
	}
	if err := t.setRunning(sum); err != nil {
		return detail, err
	}
	return detail, nil
}
