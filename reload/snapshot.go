package reload

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
)

// rollbackPlan is what a rollback of this run would put back.
type rollbackPlan struct {
	// changes are the files the install writes or deletes, and those
	// where the running set differs from the new one (an in-place
	// reload of files edited on disk), each with what a rollback
	// restores.
	changes []FileChange
	// identity names the set a rollback returns to ("" when haguard
	// knows no good config to return to); why says why, then.
	identity, why string
}

// planRollback decides what a rollback restores, per file: the running
// set's content where haguard knows it (the last verified config), else
// what the disk held before the install (for the files the candidate
// replaces). An in-place reload of a config haguard never saw running has
// nothing known-good to return to.
func (t *txn) planRollback(p plan) rollbackPlan {
	touched := p.changes()
	paths := slices.Clone(touched)
	var running Manifest
	if p.running != nil {
		running = p.running.manifest()
		for _, path := range append(running.Paths(), p.configs...) {
			if want, _ := running.Get(path); want != shaOrEmpty(p.content(path)) {
				paths = append(paths, path)
			}
		}
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	rp := rollbackPlan{}
	if p.running == nil && len(touched) == 0 {
		rp.why = "no known-good config to roll back to (first in-place reload, or reloaded outside haguard)"
	}
	isConfig := map[string]bool{}
	for _, c := range p.configs {
		isConfig[c] = true
	}
	for _, path := range paths {
		c := FileChange{Path: path, After: shaOrEmpty(p.content(path))}
		restore, known := running.Get(path)
		switch {
		case known && (restore == "" || t.hasBlob(restore)):
			c.Restore = restore
		case p.running != nil && !known && isConfig[path] && !slices.Contains(touched, path):
			c.Restore = "" // a config file the running set did not load
		case slices.Contains(touched, path):
			c.Restore = shaOrEmpty(p.disk[path])
		default:
			rp.why = fmt.Sprintf("no known-good copy of %s to roll back to (not kept in history)", path)
		}
		if c.Restore != c.After {
			rp.changes = append(rp.changes, c)
		}
	}
	if rp.why != "" {
		rp.changes = nil
		return rp
	}
	if p.running != nil {
		rp.identity = p.running.identity()
	} else {
		rp.identity = manifestOf(expandFiles(t.settings.Files, nil), nil, func(path string) ([]byte, error) {
			if b := p.disk[path]; b != nil {
				return b, nil
			}
			return nil, os.ErrNotExist
		}).Identity()
	}
	return rp
}

func shaOrEmpty(b []byte) string {
	if b == nil {
		return ""
	}
	return sha(b)
}

// snapshot keeps what the install would lose: the config to roll back to
// (the running one, or the disk's), every file of the new set, and what
// the disk held when it was neither (edited without a reload). It writes
// the history entry and the journal, and returns what a rollback restores.
func (t *txn) snapshot(ctx context.Context, p plan) (rollbackPlan, error) {
	rp := t.planRollback(p)
	newM := p.manifest()
	t.res.Snapshot = &SnapshotResult{Identity: rp.identity, Why: rp.why, Files: len(rp.changes),
		Adopted: p.running != nil && p.running.Adopted}
	err := t.stage(ctx, StageSnapshot, func() (string, error) {
		var detail string
		switch {
		case rp.why != "":
			detail = rp.why
		case p.running != nil && p.running.Adopted:
			detail = fmt.Sprintf("adopted config %s (found on disk, untouched since the running generation started) kept in history", short(rp.identity))
		case p.running != nil:
			detail = fmt.Sprintf("running config %s already in history", short(rp.identity))
		default:
			detail = fmt.Sprintf("saved %s (sha256 %s)", t.describe(rp.changes), short(rp.identity))
		}
		// Every file whose content a rollback or a later run may need.
		for _, path := range p.changes() {
			if b := p.disk[path]; b != nil {
				if _, err := t.store.putBlob(b); err != nil {
					return "", err
				}
			}
		}
		for _, e := range newM {
			if b := p.content(e.Path); b != nil {
				if _, err := t.store.putBlob(b); err != nil {
					return "", err
				}
			}
		}
		// What a rollback would restore must be readable and sound now,
		// before anything is touched.
		for _, c := range rp.changes {
			if c.Restore != "" {
				if _, err := t.store.blob(c.Restore); err != nil {
					return "", fmt.Errorf("the config to roll back to is not usable (%s): %w", c.Path, err)
				}
			}
		}
		var replaced []string
		for i, c := range rp.changes {
			if ds := shaOrEmpty(p.disk[c.Path]); ds != "" && ds != c.Restore && ds != c.After {
				rp.changes[i].Replaced = ds
				replaced = append(replaced, fmt.Sprintf("%s as sha256 %s", c.Path, short(ds)))
			}
		}
		if len(replaced) > 0 {
			detail += "; differed from what runs, saved: " + strings.Join(replaced, ", ")
		}
		t.entry = &Entry{ID: t.res.ID, Time: t.start.UTC(), Who: t.opt.Who, Reason: t.opt.Reason,
			Target: t.settings.Target, BeforeSHA256: rp.identity, AfterSHA256: newM.Identity(), Files: rp.changes,
			Outcome: OutcomeRunning, Adopted: p.running != nil && p.running.Adopted}
		for _, c := range rp.changes {
			if c.Path == t.settings.Target {
				t.entry.ReplacedSHA256 = c.Replaced
			}
		}
		if err := t.store.putEntry(*t.entry); err != nil {
			return "", err
		}
		t.journal = Journal{ID: t.res.ID, PID: os.Getpid(), Start: t.start.UTC(), Target: t.settings.Target,
			CandidateSHA256: newM.Identity(), RollbackSHA256: rp.identity, Changes: rp.changes, Candidate: newM}
		return detail, t.store.writeJournal(t.journal)
	})
	return rp, err
}

// describe names the files of changes for a message: the path of one,
// else how many.
func (t *txn) describe(cs []FileChange) string {
	if len(cs) == 1 {
		return cs[0].Path
	}
	return fmt.Sprintf("%d files", len(cs))
}

func (t *txn) hasBlob(sum string) bool {
	_, err := t.store.blob(sum)
	return err == nil
}

// install writes the candidate's files (atomically each: the old bytes or
// the new ones, never a mix) and deletes the ones it drops. From here on
// the journal says the set may hold the candidate, so a run that dies is
// rolled back by the next one.
func (t *txn) install(ctx context.Context, p plan) error {
	t.journal.Installed = true
	return t.stage(ctx, StageInstall, func() (string, error) {
		if err := t.store.prepareCommitJournal(t.journal); err != nil {
			return "", err // nothing installed yet
		}
		changed := p.changes()
		if len(changed) == 0 {
			return fmt.Sprintf("%s already holds sha256 %s; not rewritten", t.settings.Target, short(p.manifest().Identity())), nil
		}
		var done []string
		for _, path := range changed {
			b := p.cand[path]
			if b == nil {
				if err := os.Remove(path); err != nil && !isNotExist(err) {
					return "", fmt.Errorf("delete %s: %w", path, err)
				}
				done = append(done, "deleted "+path)
				continue
			}
			if _, err := writeAtomic(path, b, 0o644); err != nil {
				return "", err
			}
			done = append(done, fmt.Sprintf("installed sha256 %s at %s", short(sha(b)), path))
		}
		return strings.Join(done, "; "), nil
	})
}
