package reload

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/haguard/haguard/validate"
)

// Event types, in the order a run emits them.
const (
	// EventLockWait: another transaction holds the lock and this one
	// waits; Detail names the holder (pid, command, who, reason, since).
	EventLockWait = "lock_wait"
	// EventStageStart and EventStageEnd bracket every stage; the end
	// carries OK, the duration, the detail and the error.
	EventStageStart = "stage_start"
	EventStageEnd   = "stage_end"
	// EventWait says what a stage waits for (the master CLI to answer,
	// the reload counter to move, the unit to leave "reloading"); one
	// each time that changes.
	EventWait = "wait"
	// EventStep is a step inside a stage: the reload job, a probe round,
	// a kill, and the steps of a rollback as they happen.
	EventStep = "step"
)

// Event is one thing a transaction does, as it happens: the command
// line's live checklist and its event stream (`--format jsonl`) are made
// of these. Its JSON is documented in docs/cli.md.
type Event struct {
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	// ID is the transaction's id ("" while it waits for the lock).
	ID    string `json:"id,omitempty"`
	Stage string `json:"stage,omitempty"`
	// OK is set on stage_end only.
	OK         *bool  `json:"ok,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
	Detail     string `json:"detail,omitempty"`
	Error      string `json:"error,omitempty"`
	// Findings and Diagnostics come with the check stage's end: the
	// lint's findings, and haproxy -c's errors and warnings.
	Findings    []Finding             `json:"findings,omitempty"`
	Diagnostics []validate.Diagnostic `json:"diagnostics,omitempty"`
}

// progress hands a run's events to Options.Progress, one at a time (the
// baseline is read beside the check, so two goroutines may emit), and
// remembers the stage they belong to.
type progress struct {
	fn    func(Event)
	now   func() time.Time
	mu    sync.Mutex
	id    string
	stage string
	wait  string // the last wait said, so each is said once
}

func (p *progress) emit(e Event) {
	if p == nil || p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Type {
	case EventStageStart:
		p.stage, p.wait = e.Stage, ""
	case EventWait:
		if e.Detail == p.wait {
			return
		}
		p.wait = e.Detail
	}
	e.Time, e.ID = p.now(), p.id
	if e.Stage == "" {
		e.Stage = p.stage
	}
	p.fn(e)
}

func (p *progress) setID(id string) {
	if p != nil {
		p.mu.Lock()
		p.id = id
		p.mu.Unlock()
	}
}

// stageStarted and stageEnded are what txn.stage says around a stage.
func (p *progress) stageStarted(name string) { p.emit(Event{Type: EventStageStart, Stage: name}) }

func (p *progress) stageEnded(s Stage, res *Result) {
	ok := s.OK
	e := Event{Type: EventStageEnd, Stage: s.Name, OK: &ok, DurationMS: s.DurationMS, Detail: s.Detail, Error: s.Error}
	if s.Name == StageCheck {
		e.Findings = append([]Finding(nil), res.Findings...)
		e.Diagnostics = validate.ParseDiagnostics(res.CheckOutput)
	}
	p.emit(e)
}

// waitingFor says what the current stage waits for (once per change).
func (p *progress) waitingFor(format string, args ...any) {
	p.emit(Event{Type: EventWait, Detail: fmt.Sprintf(format, args...)})
}

func (p *progress) step(format string, args ...any) {
	p.emit(Event{Type: EventStep, Detail: fmt.Sprintf(format, args...)})
}

// withProgress wraps the ports whose calls are steps worth showing (the
// reload job, the sweep, a kill, the probes), so that a rollback, whose
// stage holds a restore, a reload, a settle and a probe, is followed as
// it happens. Without a Progress the deps are returned as they are.
func withProgress(d Deps, p *progress) Deps {
	if p == nil || p.fn == nil {
		return d
	}
	d.Reload = stepReloader{d.Reload, p}
	d.Sweeper = stepSweeper{d.Sweeper, p}
	d.Prober = stepProber{d.Prober, p}
	return d
}

type stepReloader struct {
	unitReloader
	p *progress
}

func (s stepReloader) Reload(ctx context.Context, unit string) error {
	s.p.step("reloading %s, waiting for the job", unit)
	return s.unitReloader.Reload(ctx, unit)
}

type stepSweeper struct {
	sweeper
	p *progress
}

func (s stepSweeper) Sweep(ctx context.Context) (SweepReport, error) {
	s.p.step("sweeping haproxy processes")
	return s.sweeper.Sweep(ctx)
}

func (s stepSweeper) Kill(ctx context.Context, ps []Process) error {
	s.p.step("killing %d ghost or divergent processes: %s", len(ps), listProcs(ps))
	return s.sweeper.Kill(ctx, ps)
}

type stepProber struct {
	prober
	p *progress
}

func (s stepProber) Probe(ctx context.Context, cfg *validate.Config, base ProbeBaseline) (ProbeReport, error) {
	s.p.step("probing every listener")
	rep, err := s.prober.Probe(ctx, cfg, base)
	if err == nil {
		s.p.step("probes: %d/%d OK", rep.OK, rep.Total)
	}
	return rep, err
}
