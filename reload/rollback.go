package reload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// restoredManifest is the set a rollback of this run returns to: the
// running one when haguard knows it, else the disk's as it was before the
// install (with the refs the candidate's config loads).
func (t *txn) restoredManifest(p plan) Manifest {
	if p.running != nil {
		return p.running.manifest()
	}
	return manifestOf(expandFiles(t.settings.Files, nil), p.refs, func(path string) ([]byte, error) {
		if b := p.disk[path]; b != nil {
			return b, nil
		}
		return nil, os.ErrNotExist
	})
}

// rollback restores the snapshot after a failure past install, reloads,
// and verifies again (settle + probe). It runs on a context that outlives
// a cancelled parent (SIGTERM must not stop a rollback halfway), bounded
// by its own timeout.
func (t *txn) rollback(ctx context.Context, rp rollbackPlan, p plan, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.rollbackTimeout())
	defer cancel()
	stuck := errors.Is(cause, ErrStuckMaster)
	err := t.stage(rctx, StageRollback, func() (string, error) {
		if rp.identity == "" {
			return "", errNoSnapshot
		}
		if stuck {
			// Another reload would hang the same way: put the files back,
			// so that the restart the operator must make loads what ran.
			if err := t.restoreFiles(rp.changes); err != nil {
				return "", err
			}
			return fmt.Sprintf("restored sha256 %s on disk; not reloaded: the master is stuck", short(rp.identity)), nil
		}
		return t.restore(rctx, rp.identity, rp.changes, t.restoredManifest(p))
	})
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

// restore puts back what changes restore (blobs checked first, so a
// missing or corrupt one stops it before any file is touched), reloads,
// settles and probes. It records the restored set as running. id names
// the set restored ("" when there is none: errNoSnapshot).
func (t *txn) restore(ctx context.Context, id string, changes []FileChange, running Manifest) (string, error) {
	if id == "" {
		return "", errNoSnapshot
	}
	if err := t.restoreFiles(changes); err != nil {
		return "", err
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
		return "", fmt.Errorf("restored %s but: %w", short(id), err)
	}
	detail := fmt.Sprintf("restored sha256 %s; %s", short(id), s.detail())
	if t.settings.Probe {
		// nil: the restored config was not parsed in this run; the prober reads it from disk.
		rep, err := t.deps.Prober.Probe(ctx, nil, t.learned)
		if err != nil {
			return detail, fmt.Errorf("probe after rollback: %w", err)
		}
		detail += fmt.Sprintf("; probes: %d/%d OK", rep.OK, rep.Total)
		if rep.Failed > 0 {
			return detail, fmt.Errorf("%d of %d probes still fail after rollback%s", rep.Failed, rep.Total, rep.firstError())
		}
	}
	// What runs is right; only its record may be missing (reported).
	if err := t.setRunning(id, running); err != nil {
		t.unrecorded(err)
	}
	return detail, nil
}

// restoreFiles puts back what changes restore, blobs checked first so a
// missing or corrupt one stops it before any file is touched.
func (t *txn) restoreFiles(changes []FileChange) error {
	data := make(map[string][]byte, len(changes))
	for _, c := range changes {
		if c.Restore == "" {
			continue
		}
		b, err := t.store.blob(c.Restore)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Path, err)
		}
		data[c.Path] = b
	}
	// The files first, the record after: a full or read-only state dir
	// must not keep an unverified candidate on disk.
	for _, c := range changes {
		if c.Restore == "" {
			if err := os.Remove(c.Path); err != nil && !isNotExist(err) {
				return fmt.Errorf("restore %s (remove it): %w", c.Path, err)
			}
			continue
		}
		if _, err := writeAtomic(c.Path, data[c.Path], 0o644); err != nil {
			return fmt.Errorf("restore %s: %w", c.Path, err)
		}
	}
	if t.journal.ID != "" && t.journal.Stage != StageRollback {
		t.journal.Stage = StageRollback
		if err := t.store.writeJournal(t.journal); err != nil {
			t.unrecorded(err)
		}
	}
	return nil
}
