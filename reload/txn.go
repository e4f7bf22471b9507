package reload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/haguard/haguard/internal/async"
	"github.com/haguard/haguard/validate"
)

// txn is one run: the Reloader it belongs to, the Result it fills in, and
// its working state, which is not part of the output contract.
type txn struct {
	*Reloader
	res   *Result
	opt   Options
	start time.Time
	// deps are the Reloader's, their calls told to prog as steps
	// (withProgress); this field shadows Reloader.deps for the run.
	deps Deps
	prog *progress

	// entry is the history entry, written from the snapshot stage on.
	entry *Entry
	// journal is what a run that dies leaves for the next one.
	journal Journal
	// checked is the candidate as the check parsed it.
	checked *validate.Config
	// gen is the master's generation after the last settle.
	gen *Generation
	// before is the servers' health before the reload (nil: unknown),
	// which the backends policy judges the new generation against.
	before []ServerHealth
	// learned is what the listeners looked like before the reload.
	learned ProbeBaseline
}

func newTxn(r *Reloader, opt Options, start time.Time) *txn {
	res := &Result{Stages: []Stage{}, Findings: []Finding{}, Processes: []Process{}, Probes: ProbeReport{Attempts: []ProbeAttempt{}}}
	prog := &progress{fn: opt.Progress, now: r.now}
	return &txn{Reloader: r, res: res, opt: opt, start: start, deps: withProgress(r.deps, prog), prog: prog}
}

// stage times fn, journals the stage first and records the outcome.
func (t *txn) stage(ctx context.Context, name string, fn func() (string, error)) error {
	if t.journal.ID != "" {
		t.journal.Stage = name
		t.journal.Updated = t.now().UTC()
		if err := t.store.writeJournal(t.journal); err != nil {
			if journalGuards(name) {
				t.res.Stages = append(t.res.Stages, Stage{Name: name, Error: err.Error()})
				return err
			}
			// The stage's name only tells a status what runs: the run goes
			// on (a rollback above all must not wait for a record).
			t.unrecorded(fmt.Errorf("stage %s: %w", name, err))
		}
	}
	if t.deps.Pause != nil {
		t.deps.Pause(ctx, name)
	}
	t.prog.stageStarted(name)
	begin := t.now()
	detail, err := fn()
	s := Stage{Name: name, OK: err == nil, DurationMS: t.now().Sub(begin).Milliseconds(), Detail: detail}
	if err != nil {
		s.Error = err.Error()
	}
	t.res.Stages = append(t.res.Stages, s)
	t.prog.stageEnded(s, t.res)
	t.log.Debug("stage", "id", t.res.ID, "stage", name, "ok", s.OK, "detail", detail, "error", s.Error)
	return err
}

// journalGuards says whether the journal write of stage name must succeed
// before the stage runs: install's (from there on the next run must know
// the files may hold the candidate). The others only name the stage.
func journalGuards(name string) bool { return name == StageInstall }

// unrecorded notes a record (journal, running.json, history entry, audit
// line) that could not be written: the run goes on, and its result says
// which record is missing.
func (t *txn) unrecorded(err error) {
	t.res.Unrecorded = append(t.res.Unrecorded, err.Error())
	t.log.Error("record not written", "id", t.res.ID, "err", err)
}

// run is the pipeline: recover a dead run, check, then either verify an
// unchanged config or snapshot, install, reload, settle, verify, and
// commit or roll back.
func (t *txn) run(ctx context.Context) error {
	if err := t.recoverJournal(ctx); err != nil {
		return err
	}
	t.closeStaleEntries()
	if err := t.precondition(); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if err := t.checkPending(); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}

	p, err := t.check(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if p.unchanged {
		t.res.Unchanged = true
		if verr := t.verify(ctx); verr != nil {
			return errors.Join(ErrUnchanged, fmt.Errorf("%w: %w", ErrVerify, verr))
		}
		t.res.OK = true
		return ErrUnchanged
	}

	if err := t.spaceOut(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	// The servers' runtime state is read while the snapshot is written:
	// both come before the install, and neither needs the other.
	kept := async.Go(func() func(context.Context, ConfigSet, ConfigSet) (string, error) { return t.keepState(ctx) })
	rp, err := t.snapshot(ctx, p)
	restore := kept.Wait()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	// The last point where stopping changes nothing: past it, a
	// cancellation costs an install, a reload and a rollback.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: stopped before install: %w", ErrRefused, err)
	}
	err = t.install(ctx, p)
	if err == nil {
		err = t.reloadAndSettle(ctx, p.before)
	}
	var raced error
	if err == nil {
		raced = t.checkRace(p)
	}
	if err == nil && raced == nil && restore != nil {
		t.restoreState(ctx, p, restore)
	}
	if err == nil {
		err = t.verify(ctx)
	}
	if err == nil && raced == nil && t.opt.ConfirmWithin > 0 {
		err = t.watch(ctx)
	}
	if err != nil {
		return t.rollback(ctx, rp, p, err)
	}
	if raced != nil {
		return raced
	}
	if err := t.commit(ctx, p.manifest()); err != nil {
		return fmt.Errorf("%w: committed (verified, running) but could not record it; the next run adopts it once it can write: %w", ErrBroken, err)
	}
	t.res.OK = true
	return nil
}

// finish writes the history entry, running.json, the audit line and the
// log record, and clears the journal unless the host is broken (then the
// next run must see it).
func (t *txn) finish(err error) {
	res := t.res
	if res.Outcome == "" {
		res.Outcome = outcomeOf(err)
		if res.Outcome == OutcomeCommitted && res.Pending != nil {
			res.Outcome = OutcomeProvisional
		}
	}
	res.Broken = errors.Is(err, ErrBroken) // the one place it is set
	res.DurationMS = t.now().Sub(t.start).Milliseconds()
	t.settlePending(res.Outcome, err)
	if t.entry != nil {
		t.entry.Outcome = res.Outcome
		t.entry.DurationMS = res.DurationMS
		if p := res.Pending; p != nil {
			t.entry.Confirmation = &Confirmation{Deadline: p.Deadline}
		}
		if werr := t.store.putEntry(*t.entry); werr != nil {
			t.unrecorded(werr)
		}
	}
	if !res.Broken {
		if cerr := t.store.clearJournal(); cerr != nil {
			t.unrecorded(cerr)
		}
	}
	if perr := t.store.prune(t.settings.HistoryKeep); perr != nil {
		t.log.Warn("prune history", "err", perr)
	}
	rec := AuditRecord{Time: t.start.UTC(), Who: t.opt.Who, Reason: t.opt.Reason, Target: t.settings.Target, Outcome: res.Outcome,
		SkipLint: t.opt.SkipLint, Result: *res}
	if t.entry != nil {
		rec.BeforeSHA256, rec.AfterSHA256 = t.entry.BeforeSHA256, t.entry.AfterSHA256
	}
	if aerr := t.store.audit(rec); aerr != nil {
		t.unrecorded(aerr)
	}
	t.logOutcome(rec)
}

// outcomeOf is the history outcome of a run that ended with err.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeCommitted
	case errors.Is(err, ErrBroken):
		return OutcomeBroken
	case errors.Is(err, ErrRolledBack):
		return OutcomeRolledBack
	case errors.Is(err, ErrRaced):
		return OutcomeRaced
	case errors.Is(err, ErrUnchanged):
		return OutcomeUnchanged
	}
	return OutcomeRefused
}

func (t *txn) logOutcome(rec AuditRecord) {
	res := t.res
	attrs := []any{"id", res.ID, "outcome", res.Outcome, "ok", res.OK, "rolled_back", res.RolledBack,
		"unchanged", res.Unchanged, "who", t.opt.Who, "reason", t.opt.Reason, "target", t.settings.Target,
		"before_sha256", rec.BeforeSHA256, "after_sha256", rec.AfterSHA256, "duration_ms", res.DurationMS}
	for _, s := range res.Stages {
		if !s.OK {
			attrs = append(attrs, "failed_stage", s.Name, "error", s.Error)
			break
		}
	}
	switch {
	case res.Broken:
		t.log.Error("reload transaction", attrs...)
	case res.OK:
		t.log.Info("reload transaction", attrs...)
	default:
		t.log.Warn("reload transaction", attrs...)
	}
}

// StaleError is an If-Match that no longer names the installed config
// set (Options.IfMatch): someone changed it since the client looked.
type StaleError struct {
	Want, Have string
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("if-match %s is stale: the running config is %s (changed since the request was made)", e.Want, e.Have)
}

// precondition compares Options.IfMatch with the installed set's identity.
// It runs under the lock, after a dead run's journal was recovered, so
// what it compares is what this run would replace.
func (t *txn) precondition() error {
	if t.opt.IfMatch == "" {
		return nil
	}
	have, err := t.Identity()
	if err != nil {
		return fmt.Errorf("if-match: identity of the installed config: %w", err)
	}
	if have != t.opt.IfMatch {
		return &StaleError{Want: t.opt.IfMatch, Have: have}
	}
	return nil
}
