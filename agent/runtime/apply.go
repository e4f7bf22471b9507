package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/haguard/haguard/agent/master"
)

// Commander sends one command to the master CLI (*master.Client).
type Commander = master.Commander

// Outcomes of a change in one process.
const (
	// Applied: the process took the change and holds it (read back).
	Applied = "applied"
	// Refused: an old worker refused it the way haproxy refuses a
	// stopping proxy's servers (2.6: "Proxy is disabled."); it keeps the
	// old state until its last connection ends. Not a failure.
	Refused = "refused"
	// Failed: a process that must take it did not (refused, or did not
	// answer: it died mid-apply).
	Failed = "failed"
	// Reverted: it had taken the change, and was put back because
	// another process failed.
	Reverted = "reverted"
	// RevertFailed: it had taken the change and could not be put back.
	RevertFailed = "revert_failed"
	// Skipped: never reached, because an earlier process failed.
	Skipped = "skipped"
)

// refusedStopping is 2.6's answer to a server change on a stopping proxy.
const refusedStopping = "Proxy is disabled."

// ProcResult is what one process did with a change.
type ProcResult struct {
	PID        int32  `json:"pid"`
	Generation int    `json:"generation"`
	Current    bool   `json:"current"`
	Outcome    string `json:"outcome"`
	// Answer is haproxy's words when it refused or failed.
	Answer string `json:"answer,omitempty"`
	// Before and After are the server as read before and after (server
	// changes).
	Before *Server `json:"before,omitempty"`
	After  *Server `json:"after,omitempty"`
	// EntryBefore and EntryAfter are the map entry (nil: absent).
	EntryBefore *Entry `json:"entry_before,omitempty"`
	EntryAfter  *Entry `json:"entry_after,omitempty"`
	// Sessions are the sessions this process still holds on the server
	// (an old worker that refused keeps serving them with the old state).
	Sessions int `json:"sessions"`
}

// Report is one change across every live process.
type Report struct {
	Kind   string `json:"kind"` // server or map
	Target string `json:"target"`
	Change string `json:"change"`
	OK     bool   `json:"ok"`
	// Reverted: a process failed, and those that had taken the change
	// were put back.
	Reverted  bool         `json:"reverted"`
	Processes []ProcResult `json:"processes"`
}

// FailedError names the process that failed a change.
type FailedError struct {
	PID     int32
	Current bool
	Reason  string
}

func (e *FailedError) Error() string {
	gen := "old worker"
	if e.Current {
		gen = "current worker"
	}
	return fmt.Sprintf("%s %d: %s", gen, e.PID, e.Reason)
}

// ErrNotFound: the backend, server or map entry does not exist.
var ErrNotFound = errors.New("not found")

// Process is one live worker, as `show proc` lists it.
type Process struct {
	PID        int32 `json:"pid"`
	Generation int   `json:"generation"`
	Current    bool  `json:"current"`
}

// RevertTimeout bounds putting back a change. A revert runs on its own
// budget, apart from the caller's: a change that failed because the
// caller's time ran out must still be undone everywhere it landed.
const RevertTimeout = 30 * time.Second

// Runtime applies changes through one master CLI.
type Runtime struct {
	cli Commander
	// ProcessTimeout, when set, replaces master.WorkerTimeout as the
	// bound on one command to one worker (tests shorten it).
	ProcessTimeout time.Duration
	// BeforeProcess, when set, runs before a change reaches a process:
	// tests use it to kill one mid-apply.
	BeforeProcess func(p Process)
}

// New returns a Runtime over cli.
func New(cli Commander) *Runtime { return &Runtime{cli: cli} }

// Processes lists the live workers: the current generation first, then
// the old workers, newest first.
func (r *Runtime) Processes(ctx context.Context) ([]Process, error) {
	ps, _, err := r.processes(ctx)
	return ps, err
}

func (r *Runtime) processes(ctx context.Context) ([]Process, *master.ShowProc, error) {
	out, err := r.cli.Command(ctx, "show proc")
	if err != nil {
		return nil, nil, err
	}
	sp, err := master.ParseShowProc(out)
	if err != nil {
		return nil, nil, err
	}
	var ps []Process
	for _, w := range sp.Workers {
		ps = append(ps, Process{PID: w.PID, Generation: w.Generation, Current: true})
	}
	old := slices.Clone(sp.OldWorkers)
	slices.SortStableFunc(old, func(a, b master.Proc) int { return b.Generation - a.Generation })
	for _, w := range old {
		ps = append(ps, Process{PID: w.PID, Generation: w.Generation})
	}
	if len(ps) == 0 || !ps[0].Current {
		return nil, nil, errors.New("show proc: no current worker")
	}
	return ps, sp, nil
}

// ErrReloading: the master is between a reload and its new worker (2.6
// reloads asynchronously: `show proc` counts the reload while the
// workers listed are still the generation before). A change applied then
// would miss the worker about to start.
var ErrReloading = errors.New("a reload is in progress")

// At sends cmd to the worker pid and returns its answer, trimmed.
// It waits at most master.WorkerTimeout for the answer: a silent worker
// costs that, not the caller's whole budget.
func (r *Runtime) At(ctx context.Context, pid int32, cmd string) (string, error) {
	out, err := master.AtWorker(ctx, r.cli, pid, cmd, r.ProcessTimeout)
	return strings.TrimSpace(out), err
}

// revertContext is the budget for putting a change back: ctx's values,
// not its cancellation or deadline, and RevertTimeout.
func revertContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), RevertTimeout)
}

// Servers reads `show servers state [backend]` in one process.
func (r *Runtime) Servers(ctx context.Context, pid int32, backend string) ([]Server, error) {
	out, err := r.At(ctx, pid, strings.TrimSpace("show servers state "+backend))
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(out, "Can't find backend") {
		return nil, fmt.Errorf("backend %s: %w", backend, ErrNotFound)
	}
	if out == "" {
		return nil, fmt.Errorf("process %d answered nothing to show servers state", pid)
	}
	return ParseServersState(out)
}

// Server reads one server in one process.
func (r *Runtime) Server(ctx context.Context, pid int32, backend, server string) (Server, error) {
	ss, err := r.Servers(ctx, pid, backend)
	if err != nil {
		return Server{}, err
	}
	for _, s := range ss {
		if s.Name == server {
			return s, nil
		}
	}
	return Server{}, fmt.Errorf("server %s/%s: %w", backend, server, ErrNotFound)
}

// Sessions counts the sessions a process holds on backend/server.
func (r *Runtime) Sessions(ctx context.Context, pid int32, backend, server string) (int, error) {
	out, err := r.At(ctx, pid, "show sess")
	if err != nil {
		return 0, err
	}
	return CountSessions(out, backend, server), nil
}

// Map reads a map's entries in one process.
func (r *Runtime) Map(ctx context.Context, pid int32, name string) ([]Entry, error) {
	out, err := r.At(ctx, pid, "show map "+name)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(out, "Unknown map identifier") {
		return nil, fmt.Errorf("map %s: %w", name, ErrNotFound)
	}
	return ParseShowMap(out)
}

// step is one change as it applies to one process.
type step interface {
	// read returns the state before (into res).
	read(ctx context.Context, r *Runtime, p Process, res *ProcResult) error
	// apply sends the change; answer is haproxy's refusal, if any.
	apply(ctx context.Context, r *Runtime, p Process) (answer string, err error)
	// check reads the process back and says whether it holds the change.
	check(ctx context.Context, r *Runtime, p Process, res *ProcResult) error
	// revert puts back what read saw.
	revert(ctx context.Context, r *Runtime, p Process, res ProcResult) error
	// refusable says whether an old worker may refuse with answer.
	refusable(answer string) bool
	// sessions counts what an old worker that refused still holds.
	sessions(ctx context.Context, r *Runtime, p Process) int
}

// run applies s to every live process: the current generation must take
// it; an old worker may refuse it only as s allows. On any failure, the
// processes that took it are reverted and the error is a *FailedError.
func (r *Runtime) run(ctx context.Context, rep *Report, s step) error {
	ps, sp, err := r.processes(ctx)
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	if w, ok := sp.ReloadInProgress(); ok {
		return fmt.Errorf("%w: the master is at reload %d and worker %d is of generation %d: try again once its new worker runs",
			ErrReloading, sp.Reloads, w.PID, w.Generation)
	}
	rep.Processes = make([]ProcResult, len(ps))
	for i, p := range ps {
		rep.Processes[i] = ProcResult{PID: p.PID, Generation: p.Generation, Current: p.Current, Outcome: Skipped}
	}
	var failure *FailedError
	for i, p := range ps {
		res := &rep.Processes[i]
		if r.BeforeProcess != nil {
			r.BeforeProcess(p)
		}
		if err := s.read(ctx, r, p, res); err != nil {
			if (errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists)) && i == 0 {
				rep.Processes = rep.Processes[:0]
				return err // nothing applied yet: a plain not found
			}
			res.Outcome, res.Answer = Failed, err.Error()
			failure = &FailedError{PID: p.PID, Current: p.Current, Reason: "read before the change: " + err.Error()}
			break
		}
		answer, err := s.apply(ctx, r, p)
		if err == nil && answer != "" && !p.Current && s.refusable(answer) {
			res.Outcome, res.Answer = Refused, answer
			res.Sessions = s.sessions(ctx, r, p)
			continue
		}
		if err == nil && answer != "" {
			err = errors.New(answer)
		}
		if err == nil {
			err = s.check(ctx, r, p, res)
		}
		if err != nil {
			// It may hold part of the change: revert it as well.
			res.Outcome, res.Answer = Failed, err.Error()
			failure = &FailedError{PID: p.PID, Current: p.Current, Reason: err.Error()}
			rctx, cancel := revertContext(ctx)
			if rerr := s.revert(rctx, r, p, *res); rerr != nil {
				res.Answer += "; revert: " + rerr.Error()
			}
			cancel()
			break
		}
		res.Outcome = Applied
	}
	if failure == nil {
		rep.OK = true
		return nil
	}
	rep.Reverted = true
	rctx, cancel := revertContext(ctx)
	defer cancel()
	var rerrs []error
	for i, p := range ps {
		res := &rep.Processes[i]
		if res.Outcome != Applied {
			continue
		}
		if err := s.revert(rctx, r, p, *res); err != nil {
			res.Outcome, res.Answer = RevertFailed, err.Error()
			rerrs = append(rerrs, fmt.Errorf("revert process %d: %w", p.PID, err))
			continue
		}
		res.Outcome = Reverted
	}
	return errors.Join(append([]error{failure}, rerrs...)...)
}

// Revert puts every process that took the change in rep back, when
// something after the apply (persisting it) failed. Like the revert
// inside a change, it runs on its own budget (RevertTimeout), whatever
// is left of ctx's.
func (r *Runtime) Revert(ctx context.Context, rep *Report, c any) error {
	ctx, cancel := revertContext(ctx)
	defer cancel()
	var s step
	switch c := c.(type) {
	case ServerChange:
		s = serverStep{c}
	case MapChange:
		s = mapStep{c}
	default:
		return fmt.Errorf("revert: unknown change %T", c)
	}
	var errs []error
	for i := range rep.Processes {
		res := &rep.Processes[i]
		if res.Outcome != Applied {
			continue
		}
		p := Process{PID: res.PID, Generation: res.Generation, Current: res.Current}
		if err := s.revert(ctx, r, p, *res); err != nil {
			res.Outcome, res.Answer = RevertFailed, err.Error()
			errs = append(errs, fmt.Errorf("revert process %d: %w", res.PID, err))
			continue
		}
		res.Outcome = Reverted
	}
	rep.OK, rep.Reverted = false, true
	return errors.Join(errs...)
}

// ProcSessions is how many sessions one process holds on a server.
type ProcSessions struct {
	PID      int32 `json:"pid"`
	Current  bool  `json:"current"`
	Sessions int   `json:"sessions"`
}

// CountAll counts backend/server's sessions in every live process, old
// workers included (one that exits meanwhile counts 0).
func (r *Runtime) CountAll(ctx context.Context, backend, server string) ([]ProcSessions, int, error) {
	ps, err := r.Processes(ctx)
	if err != nil {
		return nil, 0, err
	}
	var out []ProcSessions
	total := 0
	for _, p := range ps {
		n, err := r.Sessions(ctx, p.PID, backend, server)
		if err != nil {
			continue // gone meanwhile
		}
		out = append(out, ProcSessions{PID: p.PID, Current: p.Current, Sessions: n})
		total += n
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err // a count cut short is no count
	}
	return out, total, nil
}

// WaitDrained polls CountAll every poll until no live process holds a
// session on backend/server (true), or ctx ends (false, with the last
// count; -1 sessions when none succeeded). seen, when set, is told each
// count.
func (r *Runtime) WaitDrained(ctx context.Context, backend, server string, poll time.Duration, seen func([]ProcSessions, int)) ([]ProcSessions, int, bool) {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var last []ProcSessions
	lastTotal := -1 // never counted
	for {
		ps, total, err := r.CountAll(ctx, backend, server)
		if err == nil {
			last, lastTotal = ps, total
			if seen != nil {
				seen(ps, total)
			}
			if total == 0 {
				return ps, 0, true
			}
		}
		select {
		case <-ctx.Done():
			return last, lastTotal, false
		case <-tick.C:
		}
	}
}
