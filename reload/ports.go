package reload

import (
	"context"
	"time"

	"github.com/haguard/haguard/validate"
)

// The transaction sees the host only through these small interfaces. The
// host package adapts the concrete validate, systemd, agent/master,
// agent/procs and agent/probe values to them; tests use ten-line fakes.
// Data crosses them as the types below, and the config model as
// validate's (parsed once, by the check, then handed on).

// checker lints the config and runs `haproxy -c` on it. A non-nil error
// means the check could not run at all; a config that fails is a report,
// not an error.
type checker interface {
	Check(ctx context.Context, req CheckRequest) (CheckReport, error)
}

// CheckRequest is a config set to check: its config files in load order
// (real paths, -f directories expanded), and where the candidate's new
// content is staged for each path it changes (config files and the files
// they load alike). The check reads a staged file in place of its real
// path, and reports the real path.
type CheckRequest struct {
	Files  []string
	Staged map[string]string
	// Strict blocks on every error finding, not only on those the
	// running config does not have (Options.Strict).
	Strict bool
	// SkipLint silences rules for this run (Options.SkipLint).
	SkipLint []string
	// Untrusted: the candidate comes from an API client (Options.Untrusted).
	Untrusted bool
	// Running is the set haguard last installed (running.json, from the
	// history's blobs), which the candidate's error findings are compared
	// with; nil: the unit's files on disk stand in for it (an in-place
	// reload then blocks on no lint error).
	Running *ConfigSet
}

// unitReloader reloads the unit and waits for the job result. A result
// other than "done" is an error; "done" alone is never trusted (see settle).
type unitReloader interface {
	Reload(ctx context.Context, unit string) error
}

// unitInspector reads the unit's state; StatusText is where Debian's
// haproxy.service reports "Reload failed!".
type unitInspector interface {
	UnitState(ctx context.Context, unit string) (UnitState, error)
}

// generationWatcher reads the master CLI's `show proc`.
type generationWatcher interface {
	ShowProc(ctx context.Context) (Generation, error)
}

// signalReader says whether pid has the reload signal (SIGUSR2) pending:
// sent, and never taken. Optional.
type signalReader interface {
	ReloadPending(pid int) (bool, error)
}

// startupLogger returns haproxy's own words about the last load (master CLI
// `show startup-logs`, or the unit's journal). Optional.
type startupLogger interface {
	StartupLogs(ctx context.Context) (string, error)
}

// sweeper lists and classifies every haproxy process, and kills the ones
// it is told to (with its own guards: class, start time, grace).
type sweeper interface {
	Sweep(ctx context.Context) (SweepReport, error)
	Kill(ctx context.Context, procs []Process) error
}

// prober probes every listener through haproxy to the backends, and
// reads the servers' health once the new generation's first checks are
// done (ProbeReport.Servers). cfg is the config that runs, as the check
// parsed it; nil means "read it from disk" (a rollback restores a config
// this run did not parse).
type prober interface {
	// Learn probes the listeners as they are before the reload, briefly
	// (which servers greet first, which HTTP statuses they answer), for
	// Probe to hold the new generation to.
	Learn(ctx context.Context) (ProbeBaseline, error)
	Probe(ctx context.Context, cfg *validate.Config, base ProbeBaseline) (ProbeReport, error)
	// Health reads every backend server's state now (nil when haproxy
	// has no stats socket to read it from).
	Health(ctx context.Context) ([]ServerHealth, error)
}

// CheckReport is what the check stage found.
type CheckReport struct {
	// Valid is true when `haproxy -c` accepted the files.
	Valid bool
	// Output is haproxy's own output (warnings, or the error that refused).
	Output   string
	Findings []Finding
	// Config is the parsed candidate, for the stages after the check (nil
	// when it could not be parsed; haproxy -c then says why).
	Config *validate.Config
	// Refs are the files the config loads at start (maps, ACL files,
	// certificates, Lua, error files...), absolute: members of the set.
	Refs []string
	// Blocking are the error findings that refuse the candidate: those
	// the running config does not have (unless the request is Strict).
	// nil means every error finding blocks.
	Blocking []Finding
}

// Finding is one lint result, in the shape every haguard command prints.
type Finding = validate.Finding

// UnitState is what systemd says about the unit.
type UnitState struct {
	ActiveState string
	SubState    string
	StatusText  string
	MainPID     int
}

// Generation is the master's view (`show proc`).
type Generation struct {
	MasterPID int
	// Reloads is the master's reload counter; Failed its failed-reload
	// count. Both are -1 when unknown (an haproxy without a master CLI,
	// whose generation is read from the process table).
	Reloads int
	Failed  int
	// Workers are the current generation; OldWorkers are draining.
	Workers    []Worker
	OldWorkers []Worker
}

// Worker is one line under "# workers" or "# old workers".
type Worker struct {
	PID int
	// Reloads is how many reloads this worker has survived (0 = newest).
	Reloads int
	Uptime  time.Duration
}

// SweepReport is the classified process table.
type SweepReport struct {
	Processes []Process
}

// Process is one haproxy process, in the shape every haguard command prints.
type Process struct {
	PID        int       `json:"pid"`
	PPID       int       `json:"ppid"`
	Class      string    `json:"class"`
	Reason     string    `json:"reason"`
	CGroup     string    `json:"cgroup"`
	Exe        string    `json:"exe"`
	Cmdline    string    `json:"cmdline"`
	Started    time.Time `json:"started"`
	Listen     []string  `json:"listen"`
	Generation int       `json:"generation"`
	Unit       string    `json:"unit"`
	Netns      uint64    `json:"netns"`
}

// Process classes.
const (
	ClassCurrent   = "current"
	ClassDraining  = "draining"
	ClassGhost     = "ghost"
	ClassDivergent = "divergent"
	// Another unit's haproxy, or one in another network namespace or a
	// container: it takes none of the unit's traffic, and never fails
	// the sweep.
	ClassOtherUnit = "other-unit"
	ClassForeign   = "foreign"
	// Another unit's (or a container's) haproxy on the unit's own
	// address: it fails the sweep, and is never killed.
	ClassConflict = "conflict"
)

// ProbeReport is the probe stage's result: every attempt plus totals, and
// the backend servers' health as the stats socket reports it.
type ProbeReport struct {
	Total    int            `json:"total"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Attempts []ProbeAttempt `json:"attempts"`
	Servers  []ServerHealth `json:"servers,omitempty"`
}

// ProbeAttempt is one synthetic connection.
type ProbeAttempt struct {
	Target string `json:"target"`
	Kind   string `json:"kind"`
	OK     bool   `json:"ok"`
	// Reason classifies a failure ("closed by proxy after accept", "no
	// greeting", ...); "" when OK.
	Reason    string  `json:"reason,omitempty"`
	Error     string  `json:"error"`
	LatencyMS float64 `json:"latency_ms"`
}

// ProbeBaseline is what the prober learned before the reload; the
// transaction only hands it back (nil: nothing learned).
type ProbeBaseline any

// ServerHealth is one backend server's check status (e.g. "UP", "L7OK").
type ServerHealth struct {
	Backend string `json:"backend"`
	Server  string `json:"server"`
	Status  string `json:"status"`
	Check   string `json:"check"`
	// Code is the last check's layer-7 code (an HTTP status), 0 when none.
	Code int `json:"check_code,omitempty"`
}
