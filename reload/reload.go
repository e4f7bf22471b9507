// Package reload is the safe-reload transaction: lock, check, snapshot,
// install, reload, settle, sweep, probe, then commit or roll back. It sees
// the host only through the small interfaces in ports.go, so the whole
// transaction runs in unit tests against fakes and, unchanged, against a
// real systemd and haproxy.
package reload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Stage names, in order. "recover" appears only when a previous run died
// mid-transaction; "rollback" only when something failed after install.
const (
	StageRecover  = "recover"
	StageCheck    = "check"
	StageSnapshot = "snapshot"
	StageInstall  = "install"
	StageReload   = "reload"
	StageSettle   = "settle"
	StageSweep    = "sweep"
	StageProbe    = "probe"
	StageRollback = "rollback"
	stageCommit   = "commit"
)

// Errors Run returns. Test them with errors.Is.
var (
	// ErrUnchanged: the candidate is what already runs. Not a failure:
	// nothing was installed or reloaded, but sweep and probe still ran,
	// and Result.OK says how they went.
	ErrUnchanged = errors.New("config unchanged")
	// ErrRefused: the check failed; nothing was touched.
	ErrRefused = errors.New("reload refused")
	// ErrRolledBack: something failed after install and the previous
	// config was restored and verified.
	ErrRolledBack = errors.New("reload rolled back")
	// ErrVerify: sweep or probe failed on an unchanged config.
	ErrVerify = errors.New("verification failed")
	// ErrBroken: the host is left in a bad state (the rollback failed,
	// there was nothing to roll back to, or the unit failed). Page a human.
	ErrBroken = errors.New("host left in a bad state")
)

// Result is a transaction's report; its JSON is the documented contract
// (docs/reload.md). Fields tagged "-" feed the human report only.
type Result struct {
	ID         string      `json:"id"`
	OK         bool        `json:"ok"`
	Unchanged  bool        `json:"unchanged"`
	RolledBack bool        `json:"rolled_back"`
	Stages     []Stage     `json:"stages"`
	Findings   []Finding   `json:"findings"`
	Processes  []Process   `json:"processes"`
	Probes     ProbeReport `json:"probes"`
	DurationMS int64       `json:"duration_ms"`

	// Outcome is the history outcome (committed, refused, ...).
	Outcome string `json:"-"`
	// Broken is true when the host needs a human (exit 3).
	Broken bool `json:"-"`
	DryRun bool `json:"-"`
	// Plan lists what a dry run would do.
	Plan []string `json:"-"`
	// Generation is the master's view after the last settle.
	Generation *Generation `json:"-"`
	// CheckOutput is haproxy -c's output.
	CheckOutput string `json:"-"`
}

// Stage is one step of the transaction.
type Stage struct {
	Name       string `json:"name"`
	OK         bool   `json:"ok"`
	DurationMS int64  `json:"duration_ms"`
	Detail     string `json:"detail"`
	Error      string `json:"error"`
}

// Settings come from haguard.yaml.
type Settings struct {
	StateDir string
	Unit     string
	// Files are haproxy's -f files, in order.
	Files []string
	// Target is the file a candidate replaces; empty means Files[0].
	Target        string
	SettleTimeout time.Duration
	// LockWait: a second reload waits up to LockTimeout; otherwise it
	// fails at once with ErrLocked.
	LockWait    bool
	LockTimeout time.Duration
	HistoryKeep int
	// Probe runs the probe stage (reload.probe).
	Probe bool
}

// Deps are the pieces the transaction drives. All are required except
// Logs and Pause.
type Deps struct {
	Checker checker
	Reload  unitReloader
	Unit    unitInspector
	Master  generationWatcher
	Sweeper sweeper
	Prober  prober
	// Logs hands haproxy's own error back on a failed load. Optional.
	Logs startupLogger
	// Pause runs when a stage has been journaled and before it starts;
	// tests use it to kill a run at a known point. Optional.
	Pause  func(ctx context.Context, stage string)
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Options are one run's flags.
type Options struct {
	// Candidate is the file to install; empty reloads the target in place.
	Candidate  string
	DryRun     bool
	KillGhosts bool
	// Force reloads even when the config is unchanged.
	Force bool
	// ForgetInterrupted drops the journal of a dead run instead of
	// completing its rollback (the operator's escape hatch when that
	// rollback cannot succeed); the recover stage says what is on disk.
	ForgetInterrupted bool
	Reason            string
	Who               string
}

// Reloader runs transactions against one haproxy unit.
type Reloader struct {
	s   Settings
	d   Deps
	st  store
	log *slog.Logger
}

// New checks s and d and returns a Reloader.
func New(s Settings, d Deps) (*Reloader, error) {
	var errs []error
	if s.StateDir == "" {
		errs = append(errs, errors.New("state dir is empty"))
	}
	if s.Unit == "" {
		errs = append(errs, errors.New("unit is empty"))
	}
	if len(s.Files) == 0 {
		errs = append(errs, errors.New("no haproxy config files"))
	}
	if d.Checker == nil || d.Reload == nil || d.Unit == nil || d.Master == nil || d.Sweeper == nil || d.Prober == nil {
		errs = append(errs, errors.New("missing a dependency (checker, reload, unit, master, sweeper, prober)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	if s.Target == "" {
		s.Target = s.Files[0]
	}
	if s.SettleTimeout <= 0 {
		s.SettleTimeout = 15 * time.Second
	}
	if s.HistoryKeep < 1 {
		s.HistoryKeep = 20
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reloader{s: s, d: d, st: store{dir: s.StateDir}, log: log.With("unit", s.Unit)}, nil
}

// newID is sortable by time: 20261128T015742.123Z-1a2b.
func newID(t time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// Run runs one transaction. The error is nil only when a new config was
// committed; otherwise it wraps one of the sentinels above (or
// ErrLocked). The Result is filled in every case.
func (r *Reloader) Run(ctx context.Context, opt Options) (Result, error) {
	start := r.d.Now()
	res := Result{Stages: []Stage{}, Findings: []Finding{}, Processes: []Process{}, Probes: ProbeReport{Attempts: []ProbeAttempt{}}}
	t := &txn{r: r, res: &res, opt: opt, start: start}
	var err error
	if opt.DryRun {
		res.ID = newID(start)
		err = t.dryRun(ctx)
	} else {
		var lk *lockFile
		lk, err = acquireLock(ctx, r.s.StateDir, r.s.LockWait, r.s.LockTimeout,
			fmt.Sprintf("pid %d since %s", os.Getpid(), start.UTC().Format(time.RFC3339)))
		if err != nil {
			res.Outcome = OutcomeRefused
			res.DurationMS = r.d.Now().Sub(start).Milliseconds()
			return res, err
		}
		// The id is taken under the lock, so ids sort in the order the
		// transactions ran (a waiter's id is later than the holder's).
		res.ID = newID(r.d.Now())
		r.removeStaleTemps()
		err = t.run(ctx)
		t.finish(err)
		lk.release()
	}
	res.DurationMS = r.d.Now().Sub(start).Milliseconds()
	return res, err
}

// removeStaleTemps clears the temp files of a run killed mid-write, next
// to the target and in the state dir. The lock is held.
func (r *Reloader) removeStaleTemps() {
	target := r.s.Target
	if real, err := filepath.EvalSymlinks(target); err == nil {
		target = real // where writeFile puts its temp files
	}
	var removed []string
	removed = append(removed, removeStaleTemps(filepath.Dir(target), filepath.Base(target))...)
	removed = append(removed, removeStaleTemps(r.st.dir, "")...)
	removed = append(removed, removeStaleTemps(r.st.historyDir(), "")...)
	for _, p := range removed {
		r.log.Info("removed a temp file left by a killed run", "path", p)
	}
}

// finish writes the history entry, running.json, the audit line and the
// log record, and clears the journal unless the host is broken (then the
// next run must see it).
func (t *txn) finish(err error) {
	r, res := t.r, t.res
	switch {
	case res.Outcome != "":
	case err == nil:
		res.Outcome = OutcomeCommitted
	case errors.Is(err, ErrBroken):
		res.Outcome = OutcomeBroken
	case errors.Is(err, ErrRolledBack):
		res.Outcome = OutcomeRolledBack
	case errors.Is(err, ErrUnchanged):
		res.Outcome = OutcomeUnchanged
	default:
		res.Outcome = OutcomeRefused
	}
	res.Broken = errors.Is(err, ErrBroken)
	res.DurationMS = r.d.Now().Sub(t.start).Milliseconds()
	if t.entry != nil {
		t.entry.Outcome = res.Outcome
		t.entry.DurationMS = res.DurationMS
		if werr := r.st.putEntry(*t.entry); werr != nil {
			r.log.Error("history entry", "id", res.ID, "err", werr)
		}
	}
	if !res.Broken {
		if cerr := r.st.clearJournal(); cerr != nil {
			r.log.Error("clear journal", "id", res.ID, "err", cerr)
		}
	}
	if perr := r.st.prune(r.s.HistoryKeep); perr != nil {
		r.log.Warn("prune history", "err", perr)
	}
	rec := AuditRecord{Time: t.start.UTC(), Who: t.opt.Who, Reason: t.opt.Reason, Target: r.s.Target, Outcome: res.Outcome, Result: *res}
	if t.entry != nil {
		rec.BeforeSHA256, rec.AfterSHA256 = t.entry.BeforeSHA256, t.entry.AfterSHA256
	}
	if aerr := r.st.audit(rec); aerr != nil {
		r.log.Error("audit log", "id", res.ID, "err", aerr)
	}
	attrs := []any{"id", res.ID, "outcome", res.Outcome, "ok", res.OK, "rolled_back", res.RolledBack,
		"unchanged", res.Unchanged, "who", t.opt.Who, "reason", t.opt.Reason, "target", r.s.Target,
		"before_sha256", rec.BeforeSHA256, "after_sha256", rec.AfterSHA256, "duration_ms", res.DurationMS}
	for _, s := range res.Stages {
		if !s.OK {
			attrs = append(attrs, "failed_stage", s.Name, "error", s.Error)
			break
		}
	}
	switch {
	case res.Broken:
		r.log.Error("reload transaction", attrs...)
	case res.OK:
		r.log.Info("reload transaction", attrs...)
	default:
		r.log.Warn("reload transaction", attrs...)
	}
}
