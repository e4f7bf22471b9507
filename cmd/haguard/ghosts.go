package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/systemd"
)

// ghostsOpts are the flags of `haguard ghosts`.
type ghostsOpts struct {
	unit         unitFlags
	kill         bool
	grace        time.Duration
	settle       time.Duration
	masterSocket string
}

func (a *app) ghostsCmd() *cobra.Command {
	var o ghostsOpts
	cmd := &cobra.Command{
		Use:   "ghosts [--kill] [--grace 10s]",
		Short: "Find haproxy processes that the unit does not own (ghosts) or that run an outdated config",
		Long: `ghosts classifies every haproxy process on the host against the systemd unit
that should own it (docs/ghosts.md):

  current    in the unit: the master, or a worker of the newest generation
  draining   an old worker of the unit's master with no listening socket,
             finishing its connections (never killed)
  ghost      neither in the unit's cgroup nor below its master: started by
             hand, by another unit, or orphaned; worst when it listens on
             an address the managed haproxy serves
  divergent  in the unit, but an old worker still listening after the
             settle time, a worker left serving by a failed reload, or an
             executable deleted or replaced since it started

It asks systemd (MainPID, ControlGroup), the master CLI ('show proc') and
the process table; every process carries the reason for its class.

--kill sends SIGTERM to ghosts only, then SIGKILL after --grace, each signal
guarded by the process's start time against PID reuse. The report shows what
was found; kill outcomes go to stderr.

Exit codes: 0 no ghost and nothing divergent (ghosts killed with --kill
count as gone); 1 ghosts or divergent processes remain; 2 usage error, or
neither systemd nor the master CLI could be read; 3 a kill failed.`,
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	addUnitFlags(cmd, &o.unit)
	fl.BoolVar(&o.kill, "kill", false, "kill ghosts (never current, draining or divergent processes)")
	fl.DurationVar(&o.grace, "grace", 0, "wait this long after SIGTERM before SIGKILL (default: sweep.kill_grace, 10s)")
	fl.DurationVar(&o.settle, "settle", 0, "how long an old worker may keep listening after a reload (default: sweep.settle, 5s)")
	fl.StringVar(&o.masterSocket, "master-socket", "", "haproxy master CLI socket (default: haproxy.master_socket)")
	cmd.RunE = a.exec(func(ctx context.Context) (int, error) {
		cfg, err := a.loadConfig(cmd)
		if err != nil {
			return exitUsage, err
		}
		if fl.Changed("grace") && o.grace <= 0 {
			return exitUsage, usagef(errors.New("--grace: must be positive"))
		}
		if fl.Changed("settle") && o.settle < 0 {
			return exitUsage, usagef(errors.New("--settle: must not be negative"))
		}
		return a.runGhosts(ctx, cfg, o)
	})
	return cmd
}

// applyGhostsFlags overlays the flags on haguard.yaml.
func applyGhostsFlags(cfg config.Config, o ghostsOpts) config.Config {
	if o.unit.unit != "" {
		cfg.Systemd.Unit = o.unit.unit
	}
	if o.unit.busAddress != "" {
		cfg.Systemd.BusAddress = o.unit.busAddress
	}
	if o.masterSocket != "" {
		cfg.HAProxy.MasterSocket = o.masterSocket
	}
	if o.grace > 0 {
		cfg.Sweep.KillGrace = config.Duration(o.grace)
	}
	if o.settle > 0 {
		cfg.Sweep.Settle = config.Duration(o.settle)
	}
	return cfg
}

func (a *app) runGhosts(ctx context.Context, cfg config.Config, o ghostsOpts) (int, error) {
	cfg = applyGhostsFlags(cfg, o)
	log := a.logger().With("unit", cfg.Systemd.Unit)
	var units procs.UnitSource
	sd, err := systemd.Dial(ctx, cfg.Systemd.BusAddress)
	if err != nil {
		units = unreachableUnit{err} // the sweep logs it and falls back to the master CLI
	} else {
		defer sd.Close()
		units = sd
	}
	scanner := newProcScanner(cfg, units, master.New(cfg.HAProxy.MasterSocket), log)
	report, err := scanner.Sweep(ctx)
	if err != nil {
		return exitUsage, err
	}
	var kills []procs.KillResult
	if o.kill && report.Counts.Ghost > 0 {
		kills = procs.NewKiller(cfg.Sweep.KillGrace.D(), log).KillGhosts(ctx, report)
		for _, k := range kills {
			lvl := slog.LevelInfo
			if k.Outcome == procs.Failed {
				lvl = slog.LevelError
			}
			log.Log(ctx, lvl, "kill ghost", "pid", k.PID, "outcome", k.Outcome, "error", k.Error)
		}
	}
	if a.jsonOutput() {
		if err := a.writeJSON(report); err != nil {
			return exitBroken, err
		}
	} else {
		printGhosts(a.stdout, report, kills, o.kill)
	}
	return ghostsExit(report, kills), nil
}

// newProcScanner wires the sweep from haguard.yaml; reload and serve can
// use it too. units is usually a *systemd.Client.
func newProcScanner(cfg config.Config, units procs.UnitSource, mc *master.Client, log *slog.Logger) *procs.Scanner {
	return &procs.Scanner{
		Unit:    cfg.Systemd.Unit,
		Names:   cfg.HAProxy.ProcessNames,
		Settle:  cfg.Sweep.Settle.D(),
		Systemd: units,
		Master:  mc,
		Logger:  log,
	}
}

// unreachableUnit stands in for systemd when the bus cannot be reached, so
// the sweep reports the real cause.
type unreachableUnit struct{ err error }

func (u unreachableUnit) Unit(context.Context, string) (systemd.Unit, error) {
	return systemd.Unit{}, u.err
}

// ghostsExit maps a sweep (and the kills done after it) to the exit code.
func ghostsExit(r procs.Report, kills []procs.KillResult) int {
	removed := 0
	for _, k := range kills {
		switch k.Outcome {
		case procs.Failed:
			return exitBroken
		case procs.Terminated, procs.Killed, procs.Gone, procs.Reused:
			removed++
		}
	}
	if r.Counts.Divergent > 0 || r.Counts.Ghost > removed {
		return exitNegative
	}
	return exitOK
}

func printGhosts(w io.Writer, r procs.Report, kills []procs.KillResult, killed bool) {
	fmt.Fprintf(w, "unit %s, master pid %d\n\n", r.Unit, r.MasterPID)
	if len(r.Processes) == 0 {
		fmt.Fprintln(w, "no haproxy process found")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PID\tPPID\tCLASS\tGEN\tLISTEN\tSTARTED\tCGROUP\tEXE")
		for _, p := range r.Processes {
			listen := strings.Join(p.Listen, ",")
			if listen == "" {
				listen = "-"
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", p.PID, p.PPID, p.Class, p.Generation, listen, p.Started, p.Cgroup, p.Exe)
		}
		tw.Flush()
		fmt.Fprintln(w, "\nwhy:")
		for _, p := range r.Processes {
			fmt.Fprintf(w, "  %d %s: %s\n", p.PID, p.Class, p.Reason)
		}
	}
	if len(kills) > 0 {
		fmt.Fprintln(w, "\nkilled:")
		for _, k := range kills {
			line := fmt.Sprintf("  %d %s", k.PID, k.Outcome)
			if k.Error != "" {
				line += ": " + k.Error
			}
			fmt.Fprintln(w, line)
		}
	}
	c := r.Counts
	fmt.Fprintf(w, "\n%d current, %d draining, %d ghost, %d divergent", c.Current, c.Draining, c.Ghost, c.Divergent)
	switch {
	case r.Clean():
		fmt.Fprintln(w, ": clean")
	case c.Ghost > 0 && !killed:
		fmt.Fprintln(w, ": ghosts found; check them, then run 'haguard ghosts --kill'")
	default:
		fmt.Fprintln(w, ": needs attention")
	}
}
