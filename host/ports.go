package host

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
	"github.com/haguard/haguard/validate"
)

// The adapters below give the concrete systemd, master CLI, procs, probe
// and validate values the shapes of the interfaces reload declares.

type checkPort struct{ h *Host }

func (c checkPort) Check(ctx context.Context, files []string) (reload.CheckReport, error) {
	rep, err := c.h.Check(ctx, CheckOptions{Files: files})
	if err != nil {
		return reload.CheckReport{}, err
	}
	return reload.CheckReport{Valid: rep.Syntax.OK, Output: rep.Syntax.Output, Findings: rep.Findings, Config: rep.Config}, nil
}

type unitPort struct{ c *systemd.Client }

func (u unitPort) Reload(ctx context.Context, unit string) error { return u.c.Reload(ctx, unit) }

func (u unitPort) UnitState(ctx context.Context, unit string) (reload.UnitState, error) {
	s, err := u.c.Unit(ctx, unit)
	if err != nil {
		return reload.UnitState{}, err
	}
	return reload.UnitState{ActiveState: s.ActiveState, SubState: s.SubState, StatusText: s.StatusText, MainPID: int(s.MainPID)}, nil
}

type masterPort struct{ c *master.Client }

func (m masterPort) ShowProc(ctx context.Context) (reload.Generation, error) {
	sp, err := m.c.ShowProc(ctx)
	if err != nil {
		return reload.Generation{}, err
	}
	g := reload.Generation{MasterPID: int(sp.Master.PID), Reloads: sp.Reloads, Failed: sp.FailedReloads}
	for _, w := range sp.Workers {
		g.Workers = append(g.Workers, reload.Worker{PID: int(w.PID), Reloads: w.Reloads, Uptime: w.Uptime})
	}
	for _, w := range sp.OldWorkers {
		g.OldWorkers = append(g.OldWorkers, reload.Worker{PID: int(w.PID), Reloads: w.Reloads, Uptime: w.Uptime})
	}
	return g, nil
}

// logsPort returns `show startup-logs` (2.7+), else the unit's journal.
type logsPort struct {
	mc   *master.Client
	unit string
}

func (l logsPort) StartupLogs(ctx context.Context) (string, error) {
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

func (p probePort) Probe(ctx context.Context, vc *validate.Config) (reload.ProbeReport, error) {
	return p.h.ProbeForReload(ctx, vc)
}
