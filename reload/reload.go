// Package reload is the safe-reload transaction: lock, check, snapshot,
// install, reload, settle, sweep, probe, then commit or roll back. It sees
// the host only through the small interfaces in ports.go, so the whole
// transaction runs in unit tests against fakes and, unchanged, against a
// real systemd and haproxy.
//
// One file per stage: check.go, snapshot.go (snapshot and install),
// settle.go (reload and settle), verify.go (sweep and probe), rollback.go,
// recover.go (a run that died), commit.go. txn.go strings them together.
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

// Settings come from haguard.yaml.
type Settings struct {
	StateDir string
	Unit     string
	// Files are haproxy's -f arguments, in order: files, or directories
	// whose *.cfg files haproxy loads.
	Files []string
	// Target is the main config file, the one a --candidate FILE
	// replaces; empty means the first of Files that is not a directory.
	Target        string
	SettleTimeout time.Duration
	// LockWait: a second reload waits up to LockTimeout; otherwise it
	// fails at once with ErrLocked.
	LockWait    bool
	LockTimeout time.Duration
	HistoryKeep int
	// Probe runs the probe stage (reload.probe).
	Probe bool
	// Backends is the policy the servers' health is judged by
	// (BackendsPreviouslyUp when empty).
	Backends string
	// MinInterval is reload.min_interval: a reload waits until the
	// running generation is this old (interval.go); 0: no minimum.
	MinInterval time.Duration
}

// Deps are the pieces the transaction drives. All are required except
// Logs, Differ and Pause.
type Deps struct {
	Checker checker
	Reload  unitReloader
	Unit    unitInspector
	Master  generationWatcher
	Sweeper sweeper
	Prober  prober
	// Logs hands haproxy's own error back on a failed load. Optional.
	Logs startupLogger
	// Differ compares config sets for a dry run and Reloader.Diff
	// (diff.go). Optional.
	Differ differ
	// Signals tells a master that never took its reload signal. Optional.
	Signals signalReader
	// Watcher starts the watcher of a --confirm-within window. Optional.
	Watcher confirmWatcher
	// State carries runtime server state (drain, maint, weights) across
	// a reload (handover.go). Optional.
	State stateKeeper
	// Pause runs when a stage has been journaled and before it starts;
	// tests use it to stop a run at a known point. Optional.
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
	// Strict refuses a candidate on any error finding; by default only
	// the error findings the running config does not have refuse it (a
	// host whose config already has one can still be changed).
	Strict bool
	// SkipLint silences these rules for this run, in an emergency; the
	// audit records it.
	SkipLint []string
	// Untrusted: the candidate comes from an API client: the candidate
	// policy always applies and haproxy -c runs confined.
	Untrusted bool
	// IfMatch, when set, is the identity (Manifest.Identity, the API's
	// If-Match tag) the installed config set must still have once the
	// lock is held; otherwise the run ends refused with a *StaleError and
	// touches nothing. Compared under the lock, so a run that committed
	// meanwhile (another daemon job, or `haguard reload` on the command
	// line) cannot be overwritten by a client that never saw it.
	IfMatch string
	// ID, when set, is the transaction's id instead of a new one: the
	// API's job id, so that the job's Location names its history entry.
	// It must be unique and path-safe (the API makes it like newID).
	ID string
	// ConfirmWithin > 0 commits provisionally: without `haguard
	// confirm` within it, a watcher rolls the reload back (confirm.go).
	ConfirmWithin time.Duration
	// InReloadJob: the run is the unit's own ExecReload (haguard
	// exec-reload, for a plain `systemctl reload`): systemd shows the
	// unit "reloading" until the run ends, so settle goes by the
	// master's counters and workers alone; Deps.Reload must then signal
	// the master rather than ask systemd (which would wait for this very
	// job).
	InReloadJob bool
	// NoWait refuses a reload inside reload.min_interval with a
	// *TooSoonError instead of waiting it out.
	NoWait bool
	// Progress, when set, is told each step as it happens (events.go):
	// stages starting and ending, a wait for the lock and what settle
	// waits for. Calls come one at a time, from the run's goroutines.
	Progress func(Event)

	// candidateSet, when set, is the candidate as content by path (nil:
	// delete): a rollback to a history entry.
	candidateSet candidate
	// resolving is the provisional reload this rollback closes the
	// confirmation window of.
	resolving string
}

// Reloader runs transactions against one haproxy unit.
type Reloader struct {
	settings Settings
	deps     Deps
	store    store
	log      *slog.Logger
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
		for _, f := range s.Files {
			if st, err := os.Stat(f); err != nil || !st.IsDir() {
				s.Target = f
				break
			}
		}
	}
	if s.SettleTimeout <= 0 {
		s.SettleTimeout = 15 * time.Second
	}
	if s.HistoryKeep < 1 {
		s.HistoryKeep = 20
	}
	switch s.Backends {
	case "":
		s.Backends = BackendsPreviouslyUp
	case BackendsPreviouslyUp, BackendsAnyUp, BackendsIgnore:
	default:
		return nil, fmt.Errorf("reload: backends policy %q: want %s, %s or %s", s.Backends, BackendsPreviouslyUp, BackendsAnyUp, BackendsIgnore)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reloader{settings: s, deps: d, store: store{dir: s.StateDir}, log: log.With("unit", s.Unit)}, nil
}

func (r *Reloader) now() time.Time { return r.deps.Now() }

// newID is sortable by time: 20261128T015742.123Z-1a2b.
func newID(t time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// Run runs one transaction. The error is nil only when a new config was
// committed; otherwise it wraps one of the sentinels in result.go (or
// ErrLocked). The Result is filled in every case.
func (r *Reloader) Run(ctx context.Context, opt Options) (Result, error) {
	start := r.now()
	t := newTxn(r, opt, start)
	if opt.DryRun {
		t.res.ID = newID(start)
		t.prog.setID(t.res.ID)
		err := t.dryRun(ctx)
		t.res.DurationMS = r.now().Sub(start).Milliseconds()
		return *t.res, err
	}
	lk, err := t.lock(ctx)
	if err != nil {
		return *t.res, err
	}
	// Released on every way out, a panic included: a daemon that recovers
	// a panicking transaction must be able to run the next one (its
	// journal then lets that one recover the host).
	defer lk.release()
	// The id is taken under the lock, so ids sort in the order the
	// transactions ran (a waiter's id is later than the holder's).
	t.res.ID = newID(r.now())
	if opt.ID != "" {
		t.res.ID = opt.ID
	}
	t.prog.setID(t.res.ID)
	r.removeStaleTemps()
	err = t.run(ctx)
	t.finish(err)
	return *t.res, err
}

// lock takes the transaction lock, saying so while it waits. A run it
// refuses (the lock busy past reload.lock_timeout, or lock: fail) writes
// an audit line of its own, so that automation sees it.
func (t *txn) lock(ctx context.Context) (*lockFile, error) {
	r, opt := t.Reloader, t.opt
	lk, err := acquireLock(ctx, r.settings.StateDir, r.settings.LockWait, r.settings.LockTimeout,
		holderOf(opt, os.Getpid(), t.start), func(holder string) {
			t.prog.emit(Event{Type: EventLockWait, Detail: holder})
		})
	if err != nil {
		t.res.Outcome = OutcomeRefused
		t.res.DurationMS = r.now().Sub(t.start).Milliseconds()
		rec := AuditRecord{Who: opt.Who, Reason: opt.Reason, Target: r.settings.Target, SkipLint: opt.SkipLint, Result: *t.res}
		if aerr := AuditRefused(r.settings.StateDir, rec, t.start, err); aerr != nil {
			r.log.Error("audit log", "err", aerr)
		}
	}
	return lk, err
}

// removeStaleTemps clears the temp files of a run killed mid-write, next
// to the target and in the state dir. The lock is held.
func (r *Reloader) removeStaleTemps() {
	var removed []string
	paths := expandFiles(r.settings.Files, nil)
	if run, err := r.store.running(); err == nil {
		paths = append(paths, run.manifest().Paths()...)
	}
	for _, p := range paths {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real // where writeFile puts its temp files
		}
		removed = append(removed, removeStaleTemps(filepath.Dir(p), filepath.Base(p))...)
	}
	removed = append(removed, removeStaleTemps(r.store.dir, "")...)
	removed = append(removed, removeStaleTemps(r.store.historyDir(), "")...)
	for _, p := range removed {
		r.log.Info("removed a temp file left by a killed run", "path", p)
	}
}
