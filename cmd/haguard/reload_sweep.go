package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
)

// sweepAdapter adapts agent/procs (the same scanner and killer as
// `haguard ghosts`) to reload's sweeper.
type sweepAdapter struct {
	scan   *procs.Scanner
	killer *procs.Killer
	mc     *master.Client

	mu   sync.Mutex
	last map[int]procs.Process // by PID, from the last sweep: Kill needs StartTicks
}

func newSweepAdapter(cfg config.Config, sd *systemd.Client, mc *master.Client, log *slog.Logger) *sweepAdapter {
	return &sweepAdapter{scan: newProcScanner(cfg, sd, mc, log), killer: procs.NewKiller(cfg.Reload.KillGrace.D(), log), mc: mc}
}

func (s *sweepAdapter) Sweep(ctx context.Context) (reload.SweepReport, error) {
	r, err := s.scan.Sweep(ctx)
	if err != nil {
		return reload.SweepReport{}, err
	}
	out := reload.SweepReport{Processes: make([]reload.Process, 0, len(r.Processes))}
	last := make(map[int]procs.Process, len(r.Processes))
	for _, p := range r.Processes {
		last[int(p.PID)] = p
		rp := reload.Process{PID: int(p.PID), PPID: int(p.PPID), Class: string(p.Class), Reason: p.Reason,
			CGroup: p.Cgroup, Exe: p.Exe, Cmdline: p.Cmdline, Listen: p.Listen, Generation: p.Generation}
		if rp.Listen == nil {
			rp.Listen = []string{}
		}
		rp.Started = parseStarted(p.Started)
		out.Processes = append(out.Processes, rp)
	}
	s.mu.Lock()
	s.last = last
	s.mu.Unlock()
	return out, nil
}

// Kill kills ghosts, and divergent processes that are neither the master
// nor one of its current workers (killing those would stop the service:
// they are divergent after a failed reload, and need a reload, not a kill).
func (s *sweepAdapter) Kill(ctx context.Context, ps []reload.Process) error {
	keep := map[int]bool{}
	if sp, err := s.mc.ShowProc(ctx); err == nil {
		keep[int(sp.Master.PID)] = true
		for _, w := range sp.Workers {
			keep[int(w.PID)] = true
		}
	}
	s.mu.Lock()
	var victims []procs.Process
	for _, p := range ps {
		full, ok := s.last[p.PID]
		if !ok || keep[p.PID] {
			continue
		}
		if full.Class == procs.Ghost || full.Class == procs.Divergent {
			victims = append(victims, full)
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

// parseStarted reads procs' RFC 3339 start time; zero when absent.
func parseStarted(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, strings.TrimSpace(s))
	return t
}
