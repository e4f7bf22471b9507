package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
	"github.com/haguard/haguard/validate"
)

// The adapters below give the concrete systemd, master CLI, procs, probe
// and validate values the shapes of the interfaces reload declares.

type checkPort struct{ h *Host }

// Check checks the set: each config file is read from where the candidate
// staged it (when it did), and findings and haproxy's output name the
// real paths. Unless the request is strict, the error findings that the
// running config has as well do not block (Blocking): a host whose
// config already has one can still be changed.
func (c checkPort) Check(ctx context.Context, req reload.CheckRequest) (reload.CheckReport, error) {
	files := make([]string, len(req.Files))
	real := map[string]string{}
	for i, f := range req.Files {
		files[i] = f
		if staged, ok := req.Staged[f]; ok {
			files[i], real[staged] = staged, f
		}
	}
	o := CheckOptions{Files: files, Candidate: true, Untrusted: req.Untrusted, SkipLint: req.SkipLint}
	rep, err := c.h.Check(ctx, o)
	if err != nil {
		return reload.CheckReport{}, err
	}
	out := rep.Syntax.Output
	for staged, path := range real {
		out = strings.ReplaceAll(out, staged, path)
	}
	for i, f := range rep.Findings {
		if path, ok := real[f.File]; ok {
			rep.Findings[i].File = path
		}
	}
	cr := reload.CheckReport{Valid: rep.Syntax.OK, Output: out, Findings: rep.Findings, Config: rep.Config, Refs: c.h.refsOf(rep.Config)}
	if !req.Strict && rep.Summary.Error > 0 {
		cr.Blocking = c.h.newErrors(ctx, o, rep.Findings, req.Running)
	}
	return cr, nil
}

// newErrors are the error findings of a candidate that the running
// config does not have: the set haguard installed last (run, from the
// history), else the unit's files on disk, linted the same way without
// haproxy -c. When the running config cannot be linted, all of them.
func (h *Host) newErrors(ctx context.Context, o CheckOptions, cand []validate.Finding, run *reload.ConfigSet) []validate.Finding {
	o.Files, o.NoSyntax, o.Candidate, o.Untrusted = nil, true, false, false
	if run != nil {
		dir, err := os.MkdirTemp("", "haguard-running-")
		if err == nil {
			defer os.RemoveAll(dir)
			if o.Files, err = stageSet(*run, dir); err != nil {
				o.Files = nil
			}
			o.Env = h.disc.Env // read as the unit reads it
		}
	}
	running, err := h.Check(ctx, o)
	if err != nil {
		h.log.Warn("the running config could not be linted: every error finding of the candidate blocks", "err", err)
		return slices.DeleteFunc(slices.Clone(cand), func(f validate.Finding) bool { return f.Severity != validate.SevError })
	}
	var out []validate.Finding
	for _, f := range validate.NewFindings(cand, running.Findings) {
		if f.Severity == validate.SevError {
			out = append(out, f)
		}
	}
	if out == nil {
		out = []validate.Finding{} // not nil: nothing blocks
	}
	return out
}

type unitPort struct{ h *Host }

func (u unitPort) Reload(ctx context.Context, unit string) error { return u.h.sd.Reload(ctx, unit) }

func (u unitPort) UnitState(ctx context.Context, unit string) (reload.UnitState, error) {
	s, ok := u.h.freshUnit(unit)
	if !ok {
		var err error
		if s, err = u.h.sd.State(ctx, unit); err != nil {
			return reload.UnitState{}, err
		}
	}
	return reload.UnitState{ActiveState: s.ActiveState, SubState: s.SubState, StatusText: s.StatusText, MainPID: int(s.MainPID)}, nil
}

// usr2Port reloads from inside the unit's own reload job: what Debian's
// ExecReload does after its check, `kill -USR2 $MAINPID`.
type usr2Port struct{ h *Host }

func (s usr2Port) Reload(ctx context.Context, unit string) error {
	u, err := s.h.sd.Unit(ctx, unit)
	if err != nil {
		return err
	}
	if u.MainPID <= 0 {
		return fmt.Errorf("%s has no main process to signal", unit)
	}
	if err := syscall.Kill(int(u.MainPID), syscall.SIGUSR2); err != nil {
		return fmt.Errorf("signal the master (pid %d): %w", u.MainPID, err)
	}
	return nil
}

type masterPort struct{ c *master.Client }

func (m masterPort) ShowProc(ctx context.Context) (reload.Generation, error) {
	sp, err := m.c.ShowProc(ctx)
	if err != nil {
		return reload.Generation{}, err
	}
	g := reload.Generation{MasterPID: int(sp.Master.PID), Reloads: sp.Reloads, Failed: sp.FailedReloads}
	now := time.Now()
	for _, w := range sp.Workers {
		g.Workers = append(g.Workers, reload.Worker{PID: int(w.PID), Reloads: w.Reloads, Uptime: preciseUptime(w, now)})
	}
	for _, w := range sp.OldWorkers {
		g.OldWorkers = append(g.OldWorkers, reload.Worker{PID: int(w.PID), Reloads: w.Reloads, Uptime: preciseUptime(w, now)})
	}
	return g, nil
}

// preciseUptime is w's uptime from its start time in /proc when that is
// the same process. show proc counts whole seconds between two times it
// keeps in whole seconds (the fork's and now), so it is off by up to a
// second either way, and adoption's "older than the generation" test
// (reload/adopt.go) needs better. A pid that reads more than that apart
// here (another pid namespace, or reused) keeps the shown uptime.
func preciseUptime(w master.Proc, now time.Time) time.Duration {
	start, zombie, err := procs.StartTicks(w.PID)
	if err != nil || zombie {
		return w.Uptime
	}
	t := procs.TicksTime(start)
	if t.IsZero() {
		return w.Uptime
	}
	if up := now.Sub(t); (up - w.Uptime).Abs() < time.Second+50*time.Millisecond {
		return up
	}
	return w.Uptime
}

// logsPort returns `show startup-logs` (2.7+), else the unit's journal.
type logsPort struct {
	mc   *master.Client
	unit string
}

func (l logsPort) StartupLogs(ctx context.Context) (string, error) {
	if l.mc == nil {
		return systemd.Journal(ctx, l.unit, 8)
	}
	s, err := l.mc.StartupLogs(ctx)
	if errors.Is(err, master.ErrUnsupported) {
		return systemd.Journal(ctx, l.unit, 8)
	}
	return s, err
}

// sweepPort is the procs scanner and killer `haguard ghosts` uses.
type sweepPort struct {
	scan   *procs.Scanner
	killer *procs.Killer

	mu   sync.Mutex
	last procs.Report // Kill needs the full processes (start ticks, NoKill)
}

func (s *sweepPort) Sweep(ctx context.Context) (reload.SweepReport, error) {
	r, err := s.scan.Sweep(ctx)
	if err != nil {
		return reload.SweepReport{}, err
	}
	s.mu.Lock()
	s.last = r
	s.mu.Unlock()
	out := reload.SweepReport{Processes: make([]reload.Process, 0, len(r.Processes))}
	for _, p := range r.Processes {
		out.Processes = append(out.Processes, reload.Process{PID: int(p.PID), PPID: int(p.PPID), Class: string(p.Class),
			Reason: p.Reason, CGroup: p.Cgroup, Exe: p.Exe, Cmdline: p.Cmdline, Started: p.Created,
			Listen: p.Listen, Generation: p.Generation, Unit: p.Unit, Netns: p.Netns})
	}
	return out, nil
}

// Kill kills what the kill policy allows among ps (procs.Report.Victims
// with divergent processes: never the master or a worker the service runs
// on; those need a reload).
func (s *sweepPort) Kill(ctx context.Context, ps []reload.Process) error {
	want := map[int]bool{}
	for _, p := range ps {
		want[p.PID] = true
	}
	s.mu.Lock()
	var victims []procs.Process
	for _, p := range s.last.Victims(true) {
		if want[int(p.PID)] {
			victims = append(victims, p)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, k := range s.killer.Kill(ctx, victims) {
		if k.Outcome == procs.Failed {
			errs = append(errs, fmt.Errorf("pid %d: %s", k.PID, k.Error))
		}
	}
	return errors.Join(errs...)
}

type probePort struct{ h *Host }

func (p probePort) Probe(ctx context.Context, vc *validate.Config, base reload.ProbeBaseline) (reload.ProbeReport, error) {
	return p.h.ProbeForReload(ctx, vc, base)
}

func (p probePort) Learn(ctx context.Context) (reload.ProbeBaseline, error) {
	return p.h.LearnListeners(ctx)
}

func (p probePort) Health(ctx context.Context) ([]reload.ServerHealth, error) { return p.h.Health(ctx) }

// signalPort reads /proc/PID/status for a pending SIGUSR2.
type signalPort struct{}

func (signalPort) ReloadPending(pid int) (bool, error) {
	s, err := procs.PendingSignals("/proc", pid)
	return s.Has(syscall.SIGUSR2), err
}
