package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
)

// sweepAdapter is an interim sweeper for the reload transaction, until
// agent/procs lands (then this file becomes a thin adapter over it). It
// classifies every process named like haproxy: the master and the master's
// current workers are current, its old workers draining, anything outside
// the unit's cgroup a ghost. Kill sends SIGTERM to ghosts only, after
// checking that the PID still names the same process (start time).
type sweepAdapter struct {
	names []string
	unit  string
	sd    *systemd.Client
	mc    *master.Client
	grace time.Duration
	log   *slog.Logger
}

func newSweepAdapter(cfg config.Config, sd *systemd.Client, mc *master.Client, log *slog.Logger) *sweepAdapter {
	return &sweepAdapter{names: cfg.HAProxy.ProcessNames, unit: cfg.Systemd.Unit, sd: sd, mc: mc,
		grace: cfg.Reload.KillGrace.D(), log: log}
}

func (s *sweepAdapter) Sweep(ctx context.Context) (reload.SweepReport, error) {
	u, err := s.sd.Unit(ctx, s.unit)
	if err != nil {
		return reload.SweepReport{}, err
	}
	sp, err := s.mc.ShowProc(ctx)
	if err != nil {
		return reload.SweepReport{}, err
	}
	cur, old := map[int]bool{int(sp.Master.PID): true}, map[int]bool{}
	for _, w := range sp.Workers {
		cur[int(w.PID)] = true
	}
	for _, w := range sp.OldWorkers {
		old[int(w.PID)] = true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return reload.SweepReport{}, err
	}
	rep := reload.SweepReport{Processes: []reload.Process{}}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		p, ok := s.read(pid)
		if !ok {
			continue
		}
		inUnit := u.ControlGroup != "" && strings.HasPrefix(p.CGroup, u.ControlGroup)
		switch {
		case cur[pid]:
			p.Class, p.Reason = reload.ClassCurrent, "master or current worker (show proc)"
		case old[pid]:
			p.Class, p.Reason = reload.ClassDraining, "old worker (show proc)"
		case !inUnit:
			p.Class, p.Reason = reload.ClassGhost, fmt.Sprintf("outside %s's cgroup %s", s.unit, u.ControlGroup)
		default:
			p.Class, p.Reason = reload.ClassDivergent, "in the unit's cgroup but unknown to the master"
		}
		rep.Processes = append(rep.Processes, p)
	}
	return rep, nil
}

func (s *sweepAdapter) read(pid int) (reload.Process, bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	comm, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return reload.Process{}, false
	}
	exe, _ := os.Readlink(filepath.Join(dir, "exe"))
	base := strings.TrimSuffix(filepath.Base(exe), " (deleted)")
	if !slices.Contains(s.names, strings.TrimSpace(string(comm))) && !slices.Contains(s.names, base) {
		return reload.Process{}, false
	}
	p := reload.Process{PID: pid, Exe: exe, Listen: []string{}}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		p.Cmdline = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "0::"); ok {
				p.CGroup = rest
			}
		}
	}
	if st, ok := procStat(pid); ok {
		p.PPID = st.ppid
		p.Started = st.started
	}
	return p, true
}

type statInfo struct {
	ppid    int
	ticks   uint64
	started time.Time
}

func procStat(pid int) (statInfo, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return statInfo{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return statInfo{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return statInfo{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ticks, _ := strconv.ParseUint(f[19], 10, 64)
	info := statInfo{ppid: ppid, ticks: ticks}
	if up, err := os.ReadFile("/proc/uptime"); err == nil {
		if secs, err := strconv.ParseFloat(strings.Fields(string(up))[0], 64); err == nil {
			age := time.Duration(secs*float64(time.Second)) - time.Duration(ticks)*time.Second/100
			info.started = time.Now().Add(-age).UTC().Truncate(time.Second)
		}
	}
	return info, true
}

// Kill terminates ghosts and divergent processes: SIGTERM, then SIGKILL
// after the grace. A PID whose start time changed is left alone.
func (s *sweepAdapter) Kill(ctx context.Context, procs []reload.Process) error {
	type target struct {
		pid   int
		ticks uint64
	}
	var ts []target
	for _, p := range procs {
		if p.Class != reload.ClassGhost && p.Class != reload.ClassDivergent {
			continue
		}
		st, ok := procStat(p.PID)
		if !ok {
			continue
		}
		if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil {
			return fmt.Errorf("kill %d: %w", p.PID, err)
		}
		s.log.Warn("killed ghost", "pid", p.PID, "class", p.Class, "reason", p.Reason, "cmdline", p.Cmdline)
		ts = append(ts, target{p.PID, st.ticks})
	}
	deadline := time.Now().Add(s.grace)
	for _, t := range ts {
		for {
			st, ok := procStat(t.pid)
			if !ok || st.ticks != t.ticks || zombie(t.pid) {
				break
			}
			if time.Now().After(deadline) {
				_ = syscall.Kill(t.pid, syscall.SIGKILL)
				deadline = time.Now().Add(time.Second)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func zombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z'
}
