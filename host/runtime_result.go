package host

import (
	"context"
	"time"

	"github.com/haguard/haguard/agent/runtime"
	"github.com/haguard/haguard/reload"
)

// RuntimeResult is what a runtime change reports, to the CLI (server
// set, server drain, map add|set|del) and the API alike
// (docs/runtime.md): the transaction's id and stages, and what each live
// process did with the change.
type RuntimeResult struct {
	ID         string         `json:"id"`
	OK         bool           `json:"ok"`
	Change     runtime.Report `json:"change"`
	Stages     []reload.Stage `json:"stages"`
	Error      string         `json:"error,omitempty"`
	Drain      *DrainResult   `json:"drain,omitempty"`
	DurationMS int64          `json:"duration_ms"`
	// Broken: not persisted and not reverted: the host needs a human.
	Broken bool `json:"-"`
}

// DrainResult is what a drain with a wait saw.
type DrainResult struct {
	Done      bool                   `json:"done"`
	TimedOut  bool                   `json:"timed_out"`
	WaitedMS  int64                  `json:"waited_ms"`
	Sessions  int                    `json:"sessions"`
	Processes []runtime.ProcSessions `json:"processes"`
}

// ApplyRuntime runs change through r's transaction and returns the
// report; err is the transaction's.
func ApplyRuntime(ctx context.Context, r *reload.Reloader, rt *runtime.Runtime, opt reload.Options, ifMatch string,
	change func(*runtime.Runtime, *runtime.Report) reload.RuntimeChange) (RuntimeResult, error) {
	var rep runtime.Report
	res, err := r.ApplyRuntime(ctx, opt, ifMatch, change(rt, &rep))
	out := RuntimeResult{ID: res.ID, OK: err == nil, Change: rep, Stages: res.Stages, DurationMS: res.DurationMS, Broken: res.Broken}
	if out.Change.Processes == nil {
		out.Change.Processes = []runtime.ProcResult{}
	}
	if err != nil {
		out.Error = err.Error()
	}
	return out, err
}

// WaitDrained waits, up to timeout, until no live process holds a
// session on backend/server; seen is told each count.
func WaitDrained(ctx context.Context, rt *runtime.Runtime, backend, server string, timeout time.Duration, seen func([]runtime.ProcSessions, int)) *DrainResult {
	begin := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ps, total, done := rt.WaitDrained(wctx, backend, server, 250*time.Millisecond, seen)
	d := &DrainResult{Done: done, TimedOut: !done, WaitedMS: time.Since(begin).Milliseconds(), Sessions: total, Processes: ps}
	if d.Processes == nil {
		d.Processes = []runtime.ProcSessions{}
	}
	return d
}
