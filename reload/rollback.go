package reload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
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
			kept, err := t.restoreFiles(rp.changes)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("restored sha256 %s on disk%s; not reloaded: the master is stuck", short(rp.identity), keptDetail(kept)), nil
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
	kept, err := t.restoreFiles(changes)
	if err != nil {
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
	detail := fmt.Sprintf("restored sha256 %s%s; %s", short(id), keptDetail(kept), s.detail())
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
// missing or corrupt one stops it before any file is touched. A file that
// holds neither what the transaction installed nor what it restores was
// edited by someone during the transaction: it is kept in history/blobs
// (and named in the entry's kept) before it is overwritten, and left as
// it is when it cannot be kept.
func (t *txn) restoreFiles(changes []FileChange) ([]KeptFile, error) {
	data := make(map[string][]byte, len(changes))
	for _, c := range changes {
		if c.Restore == "" {
			continue
		}
		b, err := t.store.blob(c.Restore)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Path, err)
		}
		data[c.Path] = b
	}
	var kept []KeptFile
	var errs []error
	skip := map[string]bool{}
	for _, c := range changes {
		cur, err := os.ReadFile(c.Path)
		if err != nil {
			continue
		}
		if s := sha(cur); s != c.After && s != c.Restore {
			if _, err := t.store.putBlob(cur); err != nil {
				errs = append(errs, fmt.Errorf("%s was edited during the transaction (sha256 %s) and cannot be kept, so it is not restored: %w", c.Path, short(s), err))
				skip[c.Path] = true
				continue
			}
			kept = append(kept, KeptFile{Path: c.Path, SHA256: s})
		}
	}
	t.recordKept(kept)
	// The files first, the record after: a full or read-only state dir
	// must not keep an unverified candidate on disk.
	for _, c := range changes {
		if skip[c.Path] {
			continue
		}
		if c.Restore == "" {
			if err := os.Remove(c.Path); err != nil && !isNotExist(err) {
				return kept, fmt.Errorf("restore %s (remove it): %w", c.Path, err)
			}
			continue
		}
		if _, err := writeAtomic(c.Path, data[c.Path], 0o644); err != nil {
			return kept, fmt.Errorf("restore %s: %w", c.Path, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return kept, err
	}
	if t.journal.ID != "" && t.journal.Stage != StageRollback {
		t.journal.Stage = StageRollback
		if err := t.store.writeJournal(t.journal); err != nil {
			t.unrecorded(err)
		}
	}
	return kept, nil
}

// recordKept names the kept files in the history entry of the
// transaction being rolled back (this run's, or a dead run's that this
// one recovers), so that pruning keeps their blobs.
func (t *txn) recordKept(kept []KeptFile) {
	if len(kept) == 0 {
		return
	}
	add := func(e *Entry) {
		for _, k := range kept {
			if !slices.Contains(e.Kept, k) {
				e.Kept = append(e.Kept, k)
			}
		}
	}
	id := t.journal.ID
	if t.entry != nil && t.entry.ID == id {
		add(t.entry)
		return // written when the run ends
	}
	e, err := t.store.entry(id)
	if err != nil {
		t.unrecorded(fmt.Errorf("kept %s: %w", keptDetail(kept), err))
		return
	}
	add(&e)
	if err := t.store.putEntry(e); err != nil {
		t.unrecorded(err)
	}
}

// keptDetail says which edited files were kept before a restore.
func keptDetail(kept []KeptFile) string {
	if len(kept) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("; kept what was edited during the transaction:")
	for _, k := range kept {
		fmt.Fprintf(&b, " %s as sha256 %s", k.Path, short(k.SHA256))
	}
	return b.String()
}
