package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// txn is one run's working state.
type txn struct {
	r     *Reloader
	res   *Result
	opt   Options
	start time.Time
	// entry is the history entry, written from the snapshot stage on.
	entry   *Entry
	journal Journal
}

// stage times fn, journals the stage first and records the outcome.
func (t *txn) stage(ctx context.Context, name string, fn func() (string, error)) error {
	if t.journal.ID != "" {
		t.journal.Stage = name
		t.journal.Updated = t.r.d.Now().UTC()
		if err := t.r.st.writeJournal(t.journal); err != nil {
			t.res.Stages = append(t.res.Stages, Stage{Name: name, Error: err.Error()})
			return err
		}
	}
	if t.r.d.Pause != nil {
		t.r.d.Pause(ctx, name)
	}
	begin := t.r.d.Now()
	detail, err := fn()
	s := Stage{Name: name, OK: err == nil, DurationMS: t.r.d.Now().Sub(begin).Milliseconds(), Detail: detail}
	if err != nil {
		s.Error = err.Error()
	}
	t.res.Stages = append(t.res.Stages, s)
	t.r.log.Debug("stage", "id", t.res.ID, "stage", name, "ok", s.OK, "detail", detail, "error", s.Error)
	return err
}

// candidateFiles is the -f list with the candidate in the target's place.
func (t *txn) candidateFiles() []string {
	files := append([]string(nil), t.r.s.Files...)
	if t.opt.Candidate == "" {
		return files
	}
	for i, f := range files {
		if f == t.r.s.Target {
			files[i] = t.opt.Candidate
			return files
		}
	}
	return append(files, t.opt.Candidate)
}

// plan is what the check tells the rest of the transaction.
type plan struct {
	before     baseline
	newBytes   []byte
	diskBytes  []byte
	runningSHA string // "" when haguard does not know what runs
	unchanged  bool
}

func (t *txn) check(ctx context.Context) (plan, error) {
	var p plan
	err := t.stage(ctx, StageCheck, func() (string, error) {
		// The baseline (master CLI, systemd) is read while the check
		// runs; its channel is read exactly once, by wait or stop.
		type read struct {
			b   baseline
			err error
		}
		bctx, cancelBaseline := context.WithCancel(ctx)
		defer cancelBaseline()
		bc := make(chan read, 1)
		go func() {
			b, err := t.readBaseline(bctx)
			bc <- read{b, err}
		}()
		waitBaseline := func() error {
			r := <-bc
			p.before = r.b
			if r.err != nil {
				return fmt.Errorf("master CLI: %w (without it the new generation cannot be verified)", r.err)
			}
			return nil
		}
		stopBaseline := func() { cancelBaseline(); <-bc }
		src := t.r.s.Target
		if t.opt.Candidate != "" {
			src = t.opt.Candidate
		}
		var err error
		if p.newBytes, err = os.ReadFile(src); err != nil {
			stopBaseline()
			return "", fmt.Errorf("read candidate: %w", err)
		}
		if p.diskBytes, err = os.ReadFile(t.r.s.Target); err != nil && !isNotExist(err) {
			stopBaseline()
			return "", fmt.Errorf("read target: %w", err)
		}
		rep, err := t.r.d.Checker.Check(ctx, t.candidateFiles())
		if berr := waitBaseline(); berr != nil {
			return "", berr
		}
		if err != nil {
			return "", fmt.Errorf("run check: %w", err)
		}
		// The check read the files by path; the install writes the bytes
		// read above. They must be the same bytes, or what is installed
		// was never checked (and an edit of the target made meanwhile
		// would be overwritten without a snapshot).
		if err := sameBytes(src, p.newBytes); err != nil {
			return "", err
		}
		if src != t.r.s.Target {
			if err := sameBytes(t.r.s.Target, p.diskBytes); err != nil {
				return "", err
			}
		}
		t.res.Findings = append(t.res.Findings, rep.Findings...)
		t.res.CheckOutput = rep.Output
		nerr := 0
		for _, f := range rep.Findings {
			if f.Severity == "error" {
				nerr++
			}
		}
		detail := fmt.Sprintf("haproxy -c: valid; %d findings (%d errors)", len(rep.Findings), nerr)
		if !rep.Valid {
			return fmt.Sprintf("haproxy -c: invalid; %d findings (%d errors)", len(rep.Findings), nerr),
				fmt.Errorf("haproxy -c refused the config: %s", firstLines(rep.Output, 3))
		}
		if nerr > 0 {
			return detail, fmt.Errorf("%d error findings", nerr)
		}
		if run, err := t.r.st.running(); err == nil && run.MasterPID == p.before.gen.MasterPID && run.Reloads == p.before.gen.Reloads && run.Target == t.r.s.Target {
			p.runningSHA = run.SHA256
		}
		p.unchanged = p.runningSHA != "" && p.runningSHA == sha(p.newBytes) && bytes.Equal(p.newBytes, p.diskBytes) && !t.opt.Force
		return detail, nil
	})
	return p, err
}

// currentGeneration reads `show proc`, retrying for up to the settle
// timeout: right after a reload made by someone else the master is
// re-executing and refuses connections (or answers nothing) for a moment.
func (t *txn) currentGeneration(ctx context.Context) (Generation, error) {
	wctx, cancel := context.WithTimeout(ctx, t.r.s.SettleTimeout)
	defer cancel()
	begin := t.r.d.Now()
	for {
		g, err := t.r.d.Master.ShowProc(wctx)
		if err == nil {
			return g, nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return Generation{}, ctx.Err()
			}
			return Generation{}, err
		case <-time.After(pollEvery(t.r.d.Now().Sub(begin))):
		}
	}
}

func (t *txn) dryRun(ctx context.Context) error {
	t.res.DryRun = true
	p, err := t.check(ctx)
	if err != nil {
		t.res.Outcome = OutcomeRefused
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	t.res.OK = true
	if p.unchanged {
		t.res.Unchanged = true
		t.res.Plan = []string{"config unchanged: no install, no reload", "sweep", "probe"}
		return ErrUnchanged
	}
	t.res.Plan = []string{
		fmt.Sprintf("snapshot %s (sha256 %s) into %s", t.r.s.Target, short(sha(p.diskBytes)), t.r.st.historyDir()),
		fmt.Sprintf("install sha256 %s at %s", short(sha(p.newBytes)), t.r.s.Target),
		fmt.Sprintf("reload %s (master now at %d reloads, %d failed)", t.r.s.Unit, p.before.gen.Reloads, p.before.gen.Failed),
		"settle: wait for a new generation, reloads+1, failed unchanged",
		"sweep for ghost and divergent processes",
		"probe every listener",
	}
	return nil
}

func (t *txn) run(ctx context.Context) error {
	if j, err := t.r.st.journal(); err == nil {
		if err := t.recoverFrom(ctx, j); err != nil {
			return err
		}
	} else if !isNotExist(err) && t.opt.ForgetInterrupted {
		jerr := err
		if err := t.stage(ctx, StageRecover, func() (string, error) {
			disk := "unreadable"
			if b, rerr := readFileOrNil(t.r.s.Target); rerr == nil {
				disk = short(sha(b))
			}
			return fmt.Sprintf("journal unreadable (%v); forgotten on request: %s holds sha256 %s", jerr, t.r.s.Target, disk),
				t.r.st.clearJournal()
		}); err != nil {
			return fmt.Errorf("%w: %w", ErrBroken, err)
		}
	} else if !isNotExist(err) {
		_ = t.stage(ctx, StageRecover, func() (string, error) {
			return "", fmt.Errorf("journal unreadable: %w", err)
		})
		return fmt.Errorf("%w: %w", ErrBroken, err)
	}

	t.closeStaleEntries()

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

	var rollbackSHA string
	newSHA := sha(p.newBytes)
	err = t.stage(ctx, StageSnapshot, func() (string, error) {
		var detail string
		switch {
		case p.runningSHA != "" && t.hasBlob(p.runningSHA):
			rollbackSHA = p.runningSHA
			detail = fmt.Sprintf("running config %s already in history", short(rollbackSHA))
		case t.opt.Candidate != "" && p.diskBytes != nil:
			sum, err := t.r.st.putBlob(p.diskBytes)
			if err != nil {
				return "", err
			}
			rollbackSHA = sum
			detail = fmt.Sprintf("saved %s (sha256 %s)", t.r.s.Target, short(sum))
		default:
			detail = "no known-good config to roll back to (first in-place reload, or reloaded outside haguard)"
		}
		// The install overwrites the file on disk; when that is not the
		// rollback snapshot (edited without a reload), keep it too, or
		// the edits would be lost with no copy anywhere.
		var replacedSHA string
		if p.diskBytes != nil {
			if ds := sha(p.diskBytes); ds != rollbackSHA && ds != newSHA {
				if _, err := t.r.st.putBlob(p.diskBytes); err != nil {
					return "", err
				}
				replacedSHA = ds
				detail += fmt.Sprintf("; %s differed from what runs: saved it as sha256 %s", t.r.s.Target, short(ds))
			}
		}
		if _, err := t.r.st.putBlob(p.newBytes); err != nil {
			return "", err
		}
		t.entry = &Entry{ID: t.res.ID, Time: t.start.UTC(), Who: t.opt.Who, Reason: t.opt.Reason,
			Target: t.r.s.Target, BeforeSHA256: rollbackSHA, AfterSHA256: newSHA, ReplacedSHA256: replacedSHA,
			Outcome: OutcomeRunning}
		if err := t.r.st.putEntry(*t.entry); err != nil {
			return "", err
		}
		t.journal = Journal{ID: t.res.ID, PID: os.Getpid(), Start: t.start.UTC(), Target: t.r.s.Target,
			CandidateSHA256: newSHA, RollbackSHA256: rollbackSHA}
		return detail, t.r.st.writeJournal(t.journal)
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}

	// The last point where stopping changes nothing: past it, a
	// cancellation costs an install, a reload and a rollback.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: stopped before install: %w", ErrRefused, err)
	}
	t.journal.Installed = true
	err = t.stage(ctx, StageInstall, func() (string, error) {
		wrote, err := writeAtomic(t.r.s.Target, p.newBytes, 0o644)
		if err != nil {
			return "", err
		}
		if !wrote {
			return fmt.Sprintf("%s already holds sha256 %s; not rewritten", t.r.s.Target, short(newSHA)), nil
		}
		return fmt.Sprintf("installed sha256 %s at %s", short(newSHA), t.r.s.Target), nil
	})
	if err == nil {
		err = t.reloadAndSettle(ctx, p.before, false)
	}
	if err == nil {
		err = t.verify(ctx)
	}
	if err != nil {
		return t.rollback(ctx, rollbackSHA, err)
	}
	if err := t.commit(ctx, newSHA); err != nil {
		return fmt.Errorf("%w: committed but could not record it: %w", ErrBroken, err)
	}
	t.res.OK = true
	return nil
}

// closeStaleEntries marks refused the entries still "running" once any
// journal has been dealt with: their run died in the snapshot stage,
// after the entry and before the journal, so it installed nothing.
func (t *txn) closeStaleEntries() {
	es, err := t.r.st.entries()
	if err != nil {
		return
	}
	for _, e := range es {
		if e.Outcome == OutcomeRunning {
			t.markEntry(e.ID, OutcomeRefused)
		}
	}
}

func (t *txn) hasBlob(sum string) bool {
	_, err := t.r.st.blob(sum)
	return err == nil
}

// reloadAndSettle runs the reload and settle stages (or, inside a
// rollback, the same steps without stage records).
func (t *txn) reloadAndSettle(ctx context.Context, b baseline, quiet bool) error {
	doReload := func() (string, error) {
		if err := t.r.d.Reload.Reload(ctx, t.r.s.Unit); err != nil {
			return "", fmt.Errorf("reload %s: %w", t.r.s.Unit, err)
		}
		return "reload job done", nil
	}
	doSettle := func() (string, error) {
		g, detail, err := t.settle(ctx, b)
		if err == nil {
			t.res.Generation = &g
		}
		return detail, err
	}
	if quiet {
		if _, err := doReload(); err != nil {
			return err
		}
		_, err := doSettle()
		return err
	}
	if err := t.stage(ctx, StageReload, doReload); err != nil {
		return err
	}
	return t.stage(ctx, StageSettle, doSettle)
}

// verify runs sweep then probe; both run even if the sweep fails.
func (t *txn) verify(ctx context.Context) error {
	serr := t.stage(ctx, StageSweep, func() (string, error) { return t.sweep(ctx) })
	perr := t.stage(ctx, StageProbe, func() (string, error) { return t.probe(ctx) })
	return errors.Join(serr, perr)
}

func (t *txn) commit(ctx context.Context, newSHA string) error {
	if t.r.d.Pause != nil {
		t.r.d.Pause(ctx, stageCommit)
	}
	g := t.res.Generation
	if g == nil {
		return errors.New("no generation after settle")
	}
	t.journal.Stage = stageCommit
	if err := t.r.st.writeJournal(t.journal); err != nil {
		return err
	}
	return t.r.st.setRunning(Running{SHA256: newSHA, Target: t.r.s.Target, MasterPID: g.MasterPID,
		Reloads: g.Reloads, Time: t.r.d.Now().UTC(), ID: t.res.ID})
}

// sameBytes says whether path still holds want (nil: absent).
func sameBytes(path string, want []byte) error {
	b, err := os.ReadFile(path)
	if err != nil && !isNotExist(err) {
		return fmt.Errorf("read %s again: %w", path, err)
	}
	if (err == nil) != (want != nil) || !bytes.Equal(b, want) {
		return fmt.Errorf("%s changed while it was checked; run again once it is saved", path)
	}
	return nil
}

func firstLines(s string, n int) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(s)), []byte("\n"))
	if len(lines) > n {
		lines = lines[:n]
	}
	return string(bytes.Join(lines, []byte("; ")))
}
