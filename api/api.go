// Package api is haguard's REST API: an echo server with thin handlers, a
// bearer token, one error handler, a reload queue that runs one
// transaction at a time, Prometheus metrics and an OpenAPI document.
//
// The API sees the rest of haguard only through the small interfaces
// declared here. Results that other packages produce (a reload Result, a
// finding, a process) travel through it as opaque JSON values; the few
// numbers the API needs for metrics and status ride next to them in the
// small envelope types below.
package api

import (
	"context"
	"time"
)

// Checker lints a candidate config (the haguard check pipeline).
type Checker interface {
	Check(ctx context.Context, cfg []byte) (CheckReport, error)
}

// Reloader runs reload transactions and keeps their history.
//
// The queue calls Reload and Rollback one at a time, never concurrently,
// and the Reloader uses the request's ID as the transaction's id.
// Get returns a transaction of the history as an Outcome (Result is ""
// while it runs), or an error wrapping ErrNotFound for an unknown id.
type Reloader interface {
	Reload(ctx context.Context, req ReloadRequest) (Outcome, error)
	Rollback(ctx context.Context, req RollbackRequest) (Outcome, error)
	History(ctx context.Context, limit int) (any, error)
	Get(ctx context.Context, id string) (Outcome, error)
	// Confirm makes provisional reload id final (a reload run with
	// ConfirmWithin); Body is its history entry. An error wraps
	// ErrNotPending when id does not await confirmation.
	Confirm(ctx context.Context, id string) (Outcome, error)
}

// ConfigHasher gives the sha256 (hex) of the running (installed) config:
// the value If-Match is compared against.
type ConfigHasher interface {
	RunningSHA256(ctx context.Context) (string, error)
}

// GhostSource is the ghost sweep: the last result, or one run now.
type GhostSource interface {
	Last() (SweepReport, bool)
	SweepNow(ctx context.Context) (SweepReport, error)
}

// Prober runs probes through haproxy's listeners.
type Prober interface {
	Probe(ctx context.Context, req ProbeRequest) (ProbeReport, error)
}

// StatusSource reports the managed unit's state.
type StatusSource interface {
	Status(ctx context.Context) (UnitStatus, error)
}

// CheckReport is the answer of a Checker.
type CheckReport struct {
	// Valid is true when `haproxy -c` accepted the config.
	Valid bool `json:"valid"`
	// Output is haproxy -c's output (its warnings, or why it refused).
	Output string `json:"output,omitempty"`
	// Findings is the list of findings, served as-is.
	Findings any `json:"findings"`
	// Counts is the number of findings per severity (error, warning, info).
	Counts map[string]int `json:"counts"`
}

// ReloadRequest is one queued reload.
type ReloadRequest struct {
	// ID is assigned by the queue; the Reloader uses it as the
	// transaction id, so that GET /v1/reloads/{id} finds it in the
	// history after a restart.
	ID string
	// Candidate is the new main config file; nil (and no Files) reloads
	// the installed config as is.
	Candidate []byte
	// Files are a config set by absolute path (a tar or multipart body);
	// a path ending in "/" is a directory given whole.
	Files map[string][]byte
	// ConfirmWithin > 0 commits provisionally: without a confirmation
	// (POST /v1/reloads/{id}/confirm, or `haguard confirm`) within it,
	// the reload is rolled back.
	ConfirmWithin time.Duration
	// IfMatch, when set, is the identity (ConfigHasher) the running
	// config must still have. The Reloader compares it under its
	// transaction lock and ends the job refused, wrapping a
	// *PreconditionError-like error, when it is stale.
	IfMatch string
}

// RollbackRequest is one queued rollback.
type RollbackRequest struct {
	// ID is the id of this rollback transaction (assigned by the queue).
	ID string
	// To is the history id to return to; empty means the previous config.
	To string
	// IfMatch is as in ReloadRequest.
	IfMatch string
}

// Outcome is what a Reloader reports for one transaction.
type Outcome struct {
	// ID is the transaction id.
	ID string
	// Result is one of ok, unchanged, rolled_back, refused, failed.
	Result string
	// Duration is the transaction's wall time.
	Duration time.Duration
	// Counts are the check findings per severity, when the check ran.
	Counts map[string]int
	// Probes are the probe totals, when probes ran.
	Probes ProbeTotals
	// Body is the transaction's Result, served as-is.
	Body any
}

// Reload results used in haguard_reloads_total{result}.
const (
	ResultOK         = "ok"
	ResultUnchanged  = "unchanged"
	ResultRolledBack = "rolled_back"
	ResultRefused    = "refused"
	ResultFailed     = "failed"
)

// SweepReport is one ghost sweep.
type SweepReport struct {
	At time.Time `json:"at"`
	// Counts is the number of processes per class
	// (current, draining, ghost, divergent).
	Counts map[string]int `json:"counts"`
	// Processes is the process list, served as-is.
	Processes any `json:"processes"`
	// Generations is the assessment of the worker generations against
	// haguard.yaml's limits, with any escalation (agent/generations'
	// Report), served as-is; nil when the daemon made none.
	Generations any `json:"generations,omitempty"`
}

// GenerationsSample is what the metrics show of one assessment of the
// worker generations (docs/generations.md).
type GenerationsSample struct {
	Current, Draining, OverLimit int
	// OldestAge and OldestRSS are the oldest draining generation's age
	// in seconds and RSS in bytes (0 when none drains).
	OldestAge, OldestRSS float64
}

// ProbeRequest selects what POST /v1/probes runs. Targets are addresses
// from haguard.yaml (or the config's binds); empty means all of them.
type ProbeRequest struct {
	Targets []string `json:"targets,omitempty"`
	Count   int      `json:"count,omitempty"`
}

// ProbeTotals counts probe attempts.
type ProbeTotals struct {
	OK     int `json:"ok"`
	Failed int `json:"failed"`
}

// ProbeReport is the answer of a Prober.
type ProbeReport struct {
	// Report is the probe report (the `haguard probe --format json`
	// document), served as-is.
	Report any         `json:"report"`
	Totals ProbeTotals `json:"totals"`
}

// UnitStatus is the managed unit as systemd and the master CLI see it.
type UnitStatus struct {
	Unit        string `json:"unit"`
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state,omitempty"`
	MainPID     int    `json:"main_pid"`
	// Generation is the current worker generation (master CLI reloads count).
	Generation int `json:"generation"`
	// Drift is true when the running generation was not loaded from the
	// bytes on disk (the file was edited without a reload), or haguard
	// cannot tell; DriftReason says which.
	Drift       bool   `json:"drift"`
	DriftReason string `json:"drift_reason,omitempty"`
}
