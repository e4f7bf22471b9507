package reload

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// recoverJournal deals with a journal left by a run that died holding the
// lock: it finishes that run (recoverFrom), or, when the journal cannot be
// read, stops here (the host is in an unknown state) unless the operator
// asked to forget it.
func (t *txn) recoverJournal(ctx context.Context) error {
	j, err := t.store.journal()
	switch {
	case err == nil:
		return t.recoverFrom(ctx, j)
	case isNotExist(err):
		return nil
	case t.opt.ForgetInterrupted:
		jerr := err
		if err := t.stage(ctx, StageRecover, func() (string, error) {
			return fmt.Sprintf("journal unreadable (%v); forgotten on request: %s holds sha256 %s", jerr, t.settings.Target, diskSHA(t.settings.Target)),
				t.store.clearJournal()
		}); err != nil {
			return fmt.Errorf("%w: %w", ErrBroken, err)
		}
		return nil
	}
	_ = t.stage(ctx, StageRecover, func() (string, error) {
		return "", fmt.Errorf("journal unreadable: %w", err)
	})
	return fmt.Errorf("%w: %w", ErrBroken, err)
}

// recoverFrom finishes what a dead run left: a journal means it died
// holding the lock. Before install nothing changed; after install the
// target may hold an unverified candidate, so the rollback is completed.
func (t *txn) recoverFrom(ctx context.Context, j Journal) error {
	err := t.stage(ctx, StageRecover, func() (string, error) {
		what := fmt.Sprintf("transaction %s (pid %d) died at stage %s", j.ID, j.PID, j.Stage)
		switch {
		case t.opt.ForgetInterrupted:
			t.markEntry(j.ID, OutcomeBroken)
			return fmt.Sprintf("%s; forgotten on request (installed: %v): %s holds sha256 %s, candidate %s, snapshot %s",
				what, j.Installed, j.Target, diskSHA(j.Target), short(j.CandidateSHA256), short(j.RollbackSHA256)), t.store.clearJournal()
		case !j.Installed:
			t.markEntry(j.ID, OutcomeRefused)
			return what + " before install; nothing was changed", t.store.clearJournal()
		case j.Stage == stageCommit:
			if p, err := t.store.pending(); err == nil && p.ID == j.ID {
				t.markEntry(j.ID, OutcomeProvisional) // its window stays open
				return what + " after commit; it awaits confirmation until " + p.Deadline.Format(time.RFC3339), t.store.clearJournal()
			}
			t.markEntry(j.ID, OutcomeCommitted)
			return what + " after commit; " + t.adoptUnrecorded(ctx, j), t.store.clearJournal()
		}
		if j.Target != t.settings.Target {
			// Another haproxy sharing this state dir: restoring here would
			// write its snapshot over our config, and reload the wrong unit.
			return "", fmt.Errorf("%s after install, for %s, not this run's %s: run haguard with that config to complete its rollback",
				what, j.Target, t.settings.Target)
		}
		saved := t.journal
		t.journal = j
		// Completing the rollback is a rollback: a SIGTERM must not stop
		// it halfway (see rollback).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.rollbackTimeout())
		defer cancel()
		detail, err := t.restore(rctx, j.RollbackSHA256, j.files(), t.journalManifest(j))
		t.journal = saved
		if err != nil {
			return "", fmt.Errorf("%s after install; %s holds sha256 %s (candidate %s, snapshot %s); completing the rollback failed: %w",
				what, j.Target, diskSHA(j.Target), short(j.CandidateSHA256), short(j.RollbackSHA256), err)
		}
		t.markEntry(j.ID, OutcomeRecovered)
		if p, err := t.store.pending(); err == nil && p.ID == j.ID {
			_ = t.store.clearPending() // it died opening its window: there is nothing to confirm
		}
		return what + " after install; rolled back: " + detail, t.store.clearJournal()
	})
	if err != nil {
		return fmt.Errorf("%w: recover: %w", ErrBroken, err)
	}
	return nil
}

// adoptUnrecorded deals with a run that verified its candidate but died
// (or could not write running.json: the state dir full) before recording
// it: when the disk still holds that set and running.json does not name
// it, the set is recorded as what the current generation runs (adopted);
// the run that follows verifies it (an unchanged reload sweeps and
// probes). It says what it did.
func (t *txn) adoptUnrecorded(ctx context.Context, j Journal) string {
	if run, err := t.store.running(); err == nil && run.identity() == j.CandidateSHA256 {
		return "nothing to do"
	}
	if len(j.Candidate) == 0 {
		return "its commit was not recorded (a journal without the candidate's files: not adopted)"
	}
	var refs []string
	for _, e := range j.Candidate {
		if e.Ref {
			refs = append(refs, e.Path)
		}
	}
	m := manifestOf(j.Candidate.Paths(), refs, os.ReadFile)
	if m.Identity() != j.CandidateSHA256 {
		return fmt.Sprintf("its commit was not recorded, and the disk no longer holds its set (%s, not %s): not adopted",
			short(m.Identity()), short(j.CandidateSHA256))
	}
	g, err := t.deps.Master.ShowProc(ctx)
	if err != nil {
		return fmt.Sprintf("its commit was not recorded; the master cannot be read to adopt it: %v", err)
	}
	run := Running{SHA256: m.Identity(), Target: t.settings.Target, MasterPID: g.MasterPID, Reloads: g.Reloads,
		Time: t.now().UTC(), ID: j.ID, Manifest: m, Worker: newestWorker(g)}
	if err := t.store.setRunning(run); err != nil {
		t.unrecorded(fmt.Errorf("adopt the dead run's commit: %w", err))
		return "its commit was not recorded and cannot be yet: " + err.Error()
	}
	return fmt.Sprintf("its commit was not recorded: the verified set %s is on disk, adopted as running", short(m.Identity()))
}

// journalManifest is the set a dead run's rollback returns to, as far as
// its journal says: the running record when it names that set, else the
// files the journal restores.
func (t *txn) journalManifest(j Journal) Manifest {
	if run, err := t.store.running(); err == nil && run.identity() == j.RollbackSHA256 {
		return run.manifest()
	}
	var m Manifest
	for _, c := range j.files() {
		m = append(m, ManifestEntry{Path: c.Path, SHA256: c.Restore})
	}
	slices.SortFunc(m, func(a, b ManifestEntry) int { return strings.Compare(a.Path, b.Path) })
	return m
}

// diskSHA is the short sha256 of what path holds, or "unreadable".
func diskSHA(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unreadable"
	}
	return short(sha(b))
}

// closeStaleEntries marks refused the entries still "running" once any
// journal has been dealt with: their run died in the snapshot stage,
// after the entry and before the journal, so it installed nothing.
func (t *txn) closeStaleEntries() {
	es, err := t.store.entries()
	if err != nil {
		return
	}
	for _, e := range es {
		if e.Outcome == OutcomeRunning {
			t.markEntry(e.ID, OutcomeRefused)
		}
	}
}

func (t *txn) markEntry(id, outcome string) {
	e, err := t.store.entry(id)
	if err != nil {
		return
	}
	e.Outcome = outcome
	if err := t.store.putEntry(e); err != nil {
		t.log.Warn("history entry", "id", id, "err", err)
	}
}
