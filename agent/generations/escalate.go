package generations

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/config"
)

// The escalation's steps, in order.
const (
	// StepReport reads the generation's sessions (`@!PID show sess`)
	// and reports who still holds it.
	StepReport = "report"
	// StepSessions closes its idle sessions (`@!PID shutdown session
	// ID`: those that did not move since the report).
	StepSessions = "shutdown-sessions"
	// StepSoftStop sends SIGUSR1, haproxy's soft stop.
	StepSoftStop = "soft-stop"
	// StepTerminate sends SIGTERM.
	StepTerminate = "terminate"
)

// Steps are the steps in order: the labels of
// haguard_generation_escalations_total.
var Steps = []string{StepReport, StepSessions, StepSoftStop, StepTerminate}

// Escalation is where enforcement has taken one generation.
type Escalation struct {
	Step string    `json:"step"`
	At   time.Time `json:"at"`
	// Next is the step that follows, and when it may run.
	Next   string     `json:"next,omitempty"`
	NextAt *time.Time `json:"next_at,omitempty"`
	// Holders are the sessions the report step found.
	Holders []string `json:"holders"`
	// Closed counts the idle sessions the session step closed.
	Closed int `json:"closed"`
}

// Step is one step taken: the escalation's audit record (one JSON line
// in state_dir/generations.log) and its log line.
type Step struct {
	Time       time.Time `json:"time"`
	Generation int       `json:"generation"`
	Step       string    `json:"step"`
	PIDs       []int32   `json:"pids"`
	Over       []string  `json:"over"`
	Holders    []string  `json:"holders,omitempty"`
	Closed     int       `json:"closed,omitempty"`
	// Left are the sessions the shutdown-sessions step left to the
	// signals, each with what it saw move ("0x55d0…: read on the client
	// side (…)").
	Left   []string `json:"left,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// Commander sends a command to the master CLI (*master.Client).
type Commander = master.Commander

// Grace are the waits between steps.
type Grace struct {
	Sessions, SoftStop, Terminate time.Duration
}

// GraceFrom reads haguard.yaml's generations.grace.
func GraceFrom(g config.Generations) Grace {
	return Grace{Sessions: g.Grace.Sessions.D(), SoftStop: g.Grace.SoftStop.D(), Terminate: g.Grace.Terminate.D()}
}

// Escalator takes generations over a limit through the steps, one step
// per generation per call of Escalate, each once its grace has passed.
// Build it with NewEscalator; it keeps the state between sweeps.
type Escalator struct {
	master Commander
	grace  Grace
	log    *slog.Logger
	record func(Step)
	// signal sends sig to a process, guarded against PID reuse.
	signal func(pid int32, start uint64, sig syscall.Signal) error
	now    func() time.Time

	mu    sync.Mutex
	state map[genKey]*genState
}

type genKey struct {
	master int32
	gen    int
}

type genState struct {
	esc Escalation
	// seen are the sessions of the report step, by "pid/id", and when
	// it looked.
	seen   map[string]Session
	seenAt time.Time
}

// lookSess is one `show sess` of pid, timed: at is when the answer had
// arrived, rtt how long it took.
func (e *Escalator) lookSess(ctx context.Context, pid int32) (ss []Session, at time.Time, rtt time.Duration, err error) {
	asked := e.now()
	ss, err = e.showSess(ctx, pid)
	at = e.now()
	return ss, at, at.Sub(asked), err
}

// NewEscalator returns an Escalator over the master CLI. record, if set,
// is called for every step taken (audit, metrics).
func NewEscalator(m Commander, g Grace, log *slog.Logger, record func(Step)) *Escalator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Escalator{master: m, grace: g, log: log, record: record, signal: procs.SignalGuarded,
		now: time.Now, state: map[genKey]*genState{}}
}

// Escalate advances every generation of rep over a limit by at most one
// step, oldest first, and sets each one's Escalation in rep. masterPID
// keys the state: a restarted master starts its generations afresh. The
// current generation is never touched. An unsettled sweep (a reload under
// way, or no `show proc`) changes nothing: its generations may be a
// worker short, or numbered by start order, and the master that would
// relay the steps may be re-executing.
func (e *Escalator) Escalate(ctx context.Context, masterPID int32, rep *Report) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rep.Unsettled != "" {
		if rep.Over > 0 || len(e.state) > 0 {
			e.log.Info("escalation of old generations waits for a settled sweep", "why", rep.Unsettled)
		}
		return
	}
	live := map[genKey]bool{}
	for i := range rep.Generations {
		g := &rep.Generations[i]
		if g.State != Draining {
			continue
		}
		k := genKey{masterPID, g.Generation}
		live[k] = true
		st := e.state[k]
		if len(g.Over) == 0 {
			if st != nil {
				e.log.Info("old generation back within the limits: escalation stops", "generation", g.Generation, "step", st.esc.Step)
				delete(e.state, k)
			}
			continue
		}
		if st == nil {
			st = &genState{}
			e.state[k] = st
		}
		e.advance(ctx, g, masterPID, st)
		esc := st.esc
		esc.Holders = append([]string{}, esc.Holders...)
		g.Escalation = &esc
	}
	for k, st := range e.state {
		if !live[k] {
			e.log.Info("escalated old generation exited", "generation", k.gen, "last_step", st.esc.Step)
			delete(e.state, k)
		}
	}
}

// advance takes g's next step if its grace has passed.
func (e *Escalator) advance(ctx context.Context, g *Generation, masterPID int32, st *genState) {
	now := e.now()
	next, wait := e.next(st.esc.Step)
	if next == "" || (st.esc.Step != "" && now.Sub(st.esc.At) < wait) {
		return
	}
	step := Step{Time: now.UTC(), Generation: g.Generation, Step: next, PIDs: g.PIDs, Over: g.Over}
	for _, p := range g.procs {
		if p.PID == masterPID || p.Class != procs.Draining {
			continue // never the master nor the current generation
		}
		var err error
		switch next {
		case StepReport:
			err = e.report(ctx, p, st, &step)
		case StepSessions:
			err = e.closeIdle(ctx, p, st, &step)
		case StepSoftStop:
			err = e.signal(p.PID, p.StartTicks, syscall.SIGUSR1)
		case StepTerminate:
			err = e.signal(p.PID, p.StartTicks, syscall.SIGTERM)
		}
		if master.Reexecuting(err) {
			// The master re-executes for a reload: nothing was asked
			// of this worker, so the step has not been taken.
			e.log.Info("old generation's escalation step waits: the master CLI did not relay it (a reload in progress?)",
				"generation", g.Generation, "step", next, "pid", p.PID, "err", err)
			return
		}
		if err != nil {
			step.Errors = append(step.Errors, fmt.Sprintf("pid %d: %v", p.PID, err))
		}
	}
	st.esc.Step, st.esc.At = next, now
	if next == StepReport {
		st.esc.Holders = append([]string{}, step.Holders...)
	}
	st.esc.Closed += step.Closed
	st.esc.Next, st.esc.NextAt = "", nil
	if after, wait := e.next(next); after != "" {
		at := now.Add(wait)
		st.esc.Next, st.esc.NextAt = after, &at
	}
	e.log.Warn("old generation over its limits: escalation step", "generation", g.Generation, "step", next,
		"pids", g.PIDs, "over", g.Over, "holders", step.Holders, "closed", step.Closed, "left", step.Left, "errors", step.Errors)
	if e.record != nil {
		e.record(step)
	}
}

// next is the step after cur, and the grace it waits for ("" when the
// escalation is done).
func (e *Escalator) next(cur string) (string, time.Duration) {
	switch cur {
	case "":
		return StepReport, 0
	case StepReport:
		return StepSessions, e.grace.Sessions
	case StepSessions:
		return StepSoftStop, e.grace.SoftStop
	case StepSoftStop:
		return StepTerminate, e.grace.Terminate
	}
	return "", 0
}

func (e *Escalator) showSess(ctx context.Context, pid int32) ([]Session, error) {
	out, err := master.AtWorker(ctx, e.master, pid, "show sess", 0)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(out) == "" {
		// A worker lists at least the CLI session that asks: nothing
		// at all is a master that did not relay (2.6 re-executing).
		return nil, fmt.Errorf("show sess of worker %d: %w", pid, master.ErrEmptyOutput)
	}
	return ParseShowSess(out), nil
}

func (e *Escalator) report(ctx context.Context, p procs.Process, st *genState, step *Step) error {
	ss, at, _, err := e.lookSess(ctx, p.PID)
	if err != nil {
		return err
	}
	if st.seen == nil {
		st.seen = map[string]Session{}
	}
	st.seenAt = at
	for _, s := range ss {
		st.seen[strconv.Itoa(int(p.PID))+"/"+s.ID] = s
		step.Holders = append(step.Holders, s.Holder())
	}
	return nil
}

// closeIdle closes the sessions that have not moved since the report
// step: the same stream, the same wake-ups, and no read on either side
// (its read deadlines were not pushed back). A session that moved is
// left to the signals.
func (e *Escalator) closeIdle(ctx context.Context, p procs.Process, st *genState, step *Step) error {
	ss, now, rtt, err := e.lookSess(ctx, p.PID)
	if err != nil {
		return err
	}
	var errs []string
	for _, s := range ss {
		prev, ok := st.seen[strconv.Itoa(int(p.PID))+"/"+s.ID]
		if !ok {
			step.Left = append(step.Left, s.ID+": new since the report")
			continue
		}
		if idle, why := s.idleSince(prev, st.seenAt, now, rtt); !idle {
			step.Left = append(step.Left, s.ID+": "+why)
			continue
		}
		out, err := master.AtWorker(ctx, e.master, p.PID, "shutdown session "+s.ID, 0)
		if err == nil && strings.TrimSpace(out) != "" {
			err = fmt.Errorf("%s", strings.TrimSpace(out))
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("shutdown session %s: %v", s.ID, err))
			continue
		}
		step.Closed++
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
