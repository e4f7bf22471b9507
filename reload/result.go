package reload

import (
	"errors"
	"fmt"
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
	// StageWatch opens a --confirm-within window: the reload is recorded
	// as pending and its watcher started.
	StageWatch  = "watch"
	stageCommit = "commit"
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
	// ErrRaced: the config set on disk changed during the transaction
	// (a hand edit, configuration management), so haproxy may have
	// loaded either version: nothing is recorded as running, both are
	// kept in history (Result.Raced).
	ErrRaced = errors.New("the config changed on disk during the reload")
	// ErrVerify: sweep or probe failed on an unchanged config.
	ErrVerify = errors.New("verification failed")
	// ErrBroken: the host is left in a bad state (the rollback failed,
	// there was nothing to roll back to, or the unit failed). Page a human.
	ErrBroken = errors.New("host left in a bad state")
	// ErrStuckMaster: haproxy's master never took the reload (SIGUSR2
	// left pending, the reload counter never moved). No reload will
	// load anything until the master is restarted; it wraps ErrBroken.
	ErrStuckMaster = fmt.Errorf("%w: haproxy's master is stuck", ErrBroken)
)

// Result is a transaction's report: the output contract. Its JSON is
// documented (docs/reload.md) and passed through unchanged by the API and
// the Ansible role. Fields tagged "-" are the typed stage results that
// callers render; the transaction's working state is not here (see txn).
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
	// Pending is the confirmation window a --confirm-within reload
	// opened (omitted otherwise): confirm before its deadline.
	Pending *Pending `json:"pending,omitempty"`
	// Raced is set when the config set on disk, re-hashed after settle,
	// was not what the run installed (ErrRaced).
	Raced *Race `json:"raced,omitempty"`
	// Unrecorded are the records the run could not write (the state dir
	// full or read-only): the journal, running.json, the history entry
	// or the audit line. The config and what runs are as the stages say;
	// only these records are missing or stale.
	Unrecorded []string `json:"unrecorded,omitempty"`
	// Runtime is the runtime change a run without a reload applied and
	// wrote to the set (ApplyRuntime); absent for a reload.
	Runtime string `json:"runtime,omitempty"`

	// Outcome is the history outcome (committed, refused, ...).
	Outcome string `json:"-"`
	// Broken is true when the host needs a human (exit 3).
	Broken bool `json:"-"`
	// DryRun, Plan and Diff are a dry run's: what it would do, and what
	// the candidate changes against what runs (absent otherwise).
	DryRun bool     `json:"dry_run,omitempty"`
	Plan   []string `json:"plan,omitempty"`
	Diff   *Diff    `json:"diff,omitempty"`
	// CheckOutput is haproxy -c's output.
	CheckOutput string `json:"-"`
	// Settle is the new generation the settle stage saw (nil when the
	// stage did not succeed).
	Settle *SettleResult `json:"-"`
	// Sweep is the sweep stage's tally (nil when it did not run).
	Sweep *SweepResult `json:"-"`
	// Snapshot says what a rollback would return to (nil when the stage
	// did not run).
	Snapshot *SnapshotResult `json:"-"`
}

// Race is the config set found on disk after settle when it was not the
// one installed: haproxy loaded one of the two.
type Race struct {
	// Installed and OnDisk are the two sets' identities.
	Installed string `json:"installed_sha256"`
	OnDisk    string `json:"on_disk_sha256"`
	// Files are the files that differ, each kept in history/blobs.
	Files []string `json:"files"`
}

// SnapshotResult is what a rollback of the run would return to.
type SnapshotResult struct {
	// Identity names the set a rollback restores; "" when haguard knows
	// no good config to return to (Why says why): a failure after the
	// install then leaves the host to a human.
	Identity, Why string
	// Adopted: that set was found on disk, not installed by haguard.
	Adopted bool
	// Files is how many files a rollback would put back.
	Files int
}

// Stage is one step of the transaction. Detail is a one-line summary for
// JSON readers; programs that need the data read the typed results.
type Stage struct {
	Name       string `json:"name"`
	OK         bool   `json:"ok"`
	DurationMS int64  `json:"duration_ms"`
	Detail     string `json:"detail"`
	Error      string `json:"error"`
}

// SettleResult is the generation that runs after a reload.
type SettleResult struct {
	// Generation is the master's reload counter.
	Generation int
	Workers    int
	// OldWorkers are the draining workers of earlier generations;
	// OldestDraining is when the oldest of them started (zero when none).
	OldWorkers     int
	OldestDraining time.Time
}

func settleResult(g Generation, now time.Time) *SettleResult {
	s := &SettleResult{Generation: g.Reloads, Workers: len(g.Workers), OldWorkers: len(g.OldWorkers)}
	var oldest time.Duration
	for _, w := range g.OldWorkers {
		oldest = max(oldest, w.Uptime)
	}
	if s.OldWorkers > 0 {
		s.OldestDraining = now.Add(-oldest).UTC()
	}
	return s
}

// SweepResult tallies the processes the sweep stage classified.
type SweepResult struct {
	// Counts is the number of processes per class.
	Counts map[string]int
	// Killed is how many ghosts --kill-ghosts removed.
	Killed int
	// Bad are the ghost and divergent processes left after any kill.
	Bad []Process
}
