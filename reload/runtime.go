package reload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
)

// StageApply applies a runtime change to the live processes (runtime.go).
const StageApply = "apply"

// ErrStale: the config set is no longer the one an If-Match named;
// nothing was touched.
var ErrStale = errors.New("config set changed (If-Match is stale)")

// RuntimeChange is a change the live processes take without a reload,
// written to the config set too (ApplyRuntime).
type RuntimeChange struct {
	// What names the change for history and the audit log
	// ("server be/s1: state drain").
	What string
	// Edit returns the files of the set the change rewrites (path to new
	// content), from the set's config files in load order and read,
	// which returns a member's content (false: absent).
	Edit func(configs []string, read func(path string) ([]byte, bool)) (map[string][]byte, error)
	// Apply applies the change to every live process. On an error no
	// process holds it any more (it reverted those that took it).
	Apply func(ctx context.Context) error
	// Revert puts back the processes Apply changed, when persisting
	// the change failed.
	Revert func(ctx context.Context) error
}

// ApplyRuntime makes a runtime change, complete and kept: under the
// reload lock, with the set's identity checked against ifMatch (when
// set), it edits the set, checks the edited set (lint and haproxy -c),
// applies the change to the live processes, then snapshots, installs
// and records it as what runs; no reload. A failure to apply leaves the
// files untouched; a failure to persist reverts the processes. The
// history entry and the audit line say what changed, as for a reload.
func (r *Reloader) ApplyRuntime(ctx context.Context, opt Options, ifMatch string, ch RuntimeChange) (Result, error) {
	start := r.now()
	if opt.Reason == "" {
		opt.Reason = ch.What
	}
	t := newTxn(r, opt, start)
	t.res.Runtime = ch.What
	lk, err := t.lock(ctx)
	if err != nil {
		return *t.res, err
	}
	defer lk.release()
	t.res.ID = newID(r.now())
	t.prog.setID(t.res.ID)
	err = t.runtime(ctx, ifMatch, ch)
	t.finish(err)
	return *t.res, err
}

func (t *txn) runtime(ctx context.Context, ifMatch string, ch RuntimeChange) error {
	if err := t.recoverJournal(ctx); err != nil {
		return err
	}
	if err := t.checkPending(); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	p, err := t.checkRuntime(ctx, ifMatch, ch)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if err := t.stage(ctx, StageApply, func() (string, error) {
		if err := ch.Apply(ctx); err != nil {
			return "", err
		}
		return "every live process holds " + ch.What, nil
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	perr := t.persist(ctx, p)
	if perr == nil {
		t.res.OK = true
		return nil
	}
	if rerr := ch.Revert(context.WithoutCancel(ctx)); rerr != nil {
		return fmt.Errorf("%w: not persisted (%w), and the processes could not be put back: %w", ErrBroken, perr, rerr)
	}
	return fmt.Errorf("%w: not persisted, the processes were put back: %w", ErrRefused, perr)
}

// checkRuntime reads the set, checks its identity against ifMatch, edits
// it and checks the result: lint (no new error finding) and haproxy -c.
func (t *txn) checkRuntime(ctx context.Context, ifMatch string, ch RuntimeChange) (plan, error) {
	var p plan
	err := t.stage(ctx, StageCheck, func() (string, error) {
		if ifMatch != "" {
			id, err := t.Identity()
			if err != nil {
				return "", err
			}
			if id != ifMatch {
				return "", fmt.Errorf("%w: the set is %s, If-Match names %s", ErrStale, short(id), short(ifMatch))
			}
		}
		disk := map[string][]byte{}
		configs := expandFiles(t.settings.Files, nil)
		members := slices.Clone(configs)
		if run, err := t.store.running(); err == nil {
			members = append(members, run.manifest().Paths()...)
		}
		if err := readDisk(disk, members); err != nil {
			return "", err
		}
		read := func(path string) ([]byte, bool) {
			if b, ok := disk[path]; ok {
				return b, b != nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, false
			}
			disk[path] = b
			return b, true
		}
		cand, err := ch.Edit(configs, read)
		if err != nil {
			return "", err
		}
		t.opt.candidateSet = cand
		if p, err = t.readPlan(); err != nil {
			return "", err
		}
		req, cleanup, err := t.stageCheck(p)
		if err != nil {
			return "", err
		}
		rep, err := t.deps.Checker.Check(ctx, req)
		cleanup()
		if err != nil {
			return "", fmt.Errorf("run check: %w", err)
		}
		if err := t.adoptCheck(&p, rep); err != nil {
			return "", err
		}
		if !rep.Valid {
			return "", fmt.Errorf("haproxy -c on the edited config: %s", refusal(rep.Output))
		}
		blocking := countErrors(rep.Findings)
		if rep.Blocking != nil {
			blocking = countErrors(rep.Blocking)
		}
		if blocking > 0 {
			return "", fmt.Errorf("the edited config has %d new error findings", blocking)
		}
		if err := readDisk(p.disk, p.refs); err != nil {
			return "", err
		}
		if g, err := t.deps.Master.ShowProc(ctx); err == nil {
			t.gen = &g
			if run, err := t.store.running(); err == nil && run.sameGeneration(g) && run.Target == t.settings.Target {
				p.running = &run
			}
		}
		return fmt.Sprintf("haproxy -c: the edited config is valid (%s)", t.describe(fileChanges(p))), nil
	})
	return p, err
}

func fileChanges(p plan) []FileChange {
	var cs []FileChange
	for _, path := range p.changes() {
		cs = append(cs, FileChange{Path: path})
	}
	return cs
}

// persist writes the edited set: snapshot (history entry, journal),
// atomic install, and, when haguard knows what runs, the new set as
// what runs (its processes hold the change now).
func (t *txn) persist(ctx context.Context, p plan) error {
	rp, err := t.snapshot(ctx, p)
	if err != nil {
		return err
	}
	t.entry.Runtime = t.res.Runtime
	if err := t.install(ctx, p); err != nil {
		if _, rerr := t.restoreFiles(rp.changes); rerr != nil {
			return fmt.Errorf("%w: install failed (%w) and the files could not be restored: %w", ErrBroken, err, rerr)
		}
		return err
	}
	if p.running != nil && t.gen != nil {
		t.journal.Stage = stageCommit
		if err := t.store.writeJournal(t.journal); err != nil {
			return err
		}
		if err := t.setRunning(p.manifest().Identity(), p.manifest()); err != nil {
			return err
		}
	}
	return nil
}
