package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/config"
)

// ghostsOpts are the flags of `haguard ghosts`.
type ghostsOpts struct {
	unit         unitFlags
	kill         bool
	grace        time.Duration
	settle       time.Duration
	settleSet    bool // --settle given, so 0 means 0, not the default
	masterSocket string
}

func (a *app) ghostsCmd() *cobra.Command {
	var o ghostsOpts
	cmd := &cobra.Command{
		Use:   "ghosts [--kill] [--grace DURATION]",
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
  other-unit in another service's cgroup (e.g. haproxy@second.service),
             listening on none of the unit's addresses
  foreign    in another network namespace, or in a container's cgroup
             (docker-*.scope, libpod-*, kubepods, machine.slice, lxc)
  conflict   another unit's or a container's haproxy listening on one of
             the unit's addresses in the same network namespace: the
             kernel splits new connections between the two; the reason
             names the unit to stop

Listeners share traffic only within one network namespace: the same port
in a container's namespace is another socket.

It asks systemd (MainPID, ControlGroup), the master CLI ('show proc') and
the process table; every process carries the reason for its class.

--kill sends SIGTERM to ghosts only, then SIGKILL after --grace, each signal
guarded by the process's start time against PID reuse. The report shows what
the sweep found, then one line per ghost with what was done to it
(terminated, killed, gone, pid-reused or failed), and closes on the state
after the kill. With --format json the same outcomes are in "kills".
--kill never signals the master or the workers serving now, nor another
unit's, another namespace's or a container's haproxy (systemd or the runtime
would start it again), and signals nothing when systemd did not give the
unit's cgroup (it cannot then tell the unit's own processes from ghosts):
those kills fail, exit 3.

Exit codes:
  0  no ghost, nothing divergent and no conflict (ghosts removed by --kill
     count as gone; other-unit and foreign processes are fine)
  1  ghosts, divergent or conflicting processes remain
  2  usage error, or neither systemd nor the master CLI could be read
  3  a kill failed: a ghost still runs

Examples:
  haguard ghosts                      # look only
  haguard ghosts --kill --grace 5s    # remove ghosts, SIGKILL after 5s
  haguard ghosts --format json | jq '.processes[] | select(.class=="ghost")'`,
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	addUnitFlags(cmd, &o.unit)
	fl.BoolVar(&o.kill, "kill", false, "kill ghosts (never current, draining, divergent, other-unit, foreign or conflict processes)")
	fl.DurationVar(&o.grace, "grace", 0, "wait this long after SIGTERM before SIGKILL (default: sweep.kill_grace, 10s)")
	fl.DurationVar(&o.settle, "settle", 0, "how long an old worker may keep listening after a reload before it counts as divergent; 0 = not at all (default: sweep.settle, 5s)")
	fl.StringVar(&o.masterSocket, "master-socket", "", "haproxy master CLI socket (default: haproxy.master_socket)")
	cmd.RunE = a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
		if fl.Changed("grace") && o.grace <= 0 {
			return exitUsage, usagef(errors.New("--grace: must be positive"))
		}
		if o.settleSet = fl.Changed("settle"); o.settleSet && o.settle < 0 {
			return exitUsage, usagef(errors.New("--settle: must not be negative"))
		}
		return a.forUnits(ctx, cfg, o.unit, func(ctx context.Context, cfg config.Config) unitResult {
			return a.runGhosts(ctx, cfg, o)
		})
	})
	return cmd
}

// applyGhostsFlags overlays the flags on haguard.yaml (the unit flags
// are forUnits').
func applyGhostsFlags(cfg config.Config, o ghostsOpts) config.Config {
	if o.masterSocket != "" {
		cfg.HAProxy.MasterSocket = o.masterSocket
	}
	if o.grace > 0 {
		cfg.Sweep.KillGrace = config.Duration(o.grace)
	}
	if o.settleSet || o.settle > 0 {
		cfg.Sweep.Settle = config.Duration(o.settle)
	}
	return cfg
}

func (a *app) runGhosts(ctx context.Context, cfg config.Config, o ghostsOpts) unitResult {
	cfg = applyGhostsFlags(cfg, o)
	log := a.logger().With("unit", cfg.Systemd.Unit)
	h, closeFn, err := openHostBestEffort(ctx, cfg, unitFlags{}, log) // no bus: the sweep falls back to the master CLI
	if err != nil {
		return unitResult{code: exitUsage, err: err}
	}
	defer closeFn()
	scanner := h.Scanner()
	report, err := scanner.Sweep(ctx)
	if err != nil {
		return unitResult{code: exitUsage, err: err}
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
	return unitResult{code: ghostsExit(report, kills), doc: ghostsJSON(report, kills),
		human: func(w io.Writer) { printGhosts(w, report, kills, o.kill) }}
}

// ghostsDoc is the JSON document of `haguard ghosts`: the sweep's report
// (the issue-5 contract, unchanged) plus what --kill did to each ghost.
type ghostsDoc struct {
	procs.Report
	Kills []ghostKill `json:"kills"`
}

// ghostKill is one kill outcome; error is always present (empty unless
// the outcome is failed) so scripts can read it without a default.
type ghostKill struct {
	PID     int32         `json:"pid"`
	Outcome procs.Outcome `json:"outcome"`
	Error   string        `json:"error"`
}

func ghostsJSON(r procs.Report, kills []procs.KillResult) ghostsDoc {
	d := ghostsDoc{Report: r, Kills: make([]ghostKill, 0, len(kills))}
	for _, k := range kills {
		d.Kills = append(d.Kills, ghostKill{PID: k.PID, Outcome: k.Outcome, Error: k.Error})
	}
	return d
}

// ghostsExit maps a sweep (and the kills done after it) to the exit code.
func ghostsExit(r procs.Report, kills []procs.KillResult) int {
	removed, failed := procs.Tally(kills)
	switch {
	case failed > 0:
		return exitBroken
	case r.Counts.Divergent > 0 || r.Counts.Conflict > 0 || r.Counts.Ghost > removed:
		return exitNegative
	}
	return exitOK
}

// killMeaning says in words what a kill outcome means for the operator.
func killMeaning(k procs.KillResult) string {
	switch k.Outcome {
	case procs.Terminated:
		return "exited after SIGTERM"
	case procs.Killed:
		return "still running after the grace, exited after SIGKILL"
	case procs.Gone:
		return "had already exited, not signalled"
	case procs.Reused:
		return "the pid now names another process, not signalled"
	case procs.Failed:
		if k.Error == "" {
			return "still running"
		}
		return "still running: " + k.Error
	}
	return k.Error
}

func ghostNoun(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func printGhosts(w io.Writer, r procs.Report, kills []procs.KillResult, killed bool) {
	fmt.Fprintf(w, "unit %s, master pid %d\n\n", r.Unit, r.MasterPID)
	if len(r.Processes) == 0 {
		fmt.Fprintln(w, "no haproxy process found")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PID\tPPID\tCLASS\tGEN\tLISTEN\tSTARTED\tUNIT\tCGROUP\tEXE")
		for _, p := range r.Processes {
			listen := strings.Join(p.Listen, ",")
			if listen == "" {
				listen = "-"
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.PID, p.PPID, p.Class, p.Generation, listen, p.Started, dash(p.Unit), p.Cgroup, p.Exe)
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
			fmt.Fprintf(w, "  %d %s: %s\n", k.PID, k.Outcome, killMeaning(k))
		}
	}
	c := r.Counts
	counts := fmt.Sprintf("%d current, %d draining, %d ghost, %d divergent", c.Current, c.Draining, c.Ghost, c.Divergent)
	for _, cl := range []procs.Class{procs.OtherUnit, procs.Foreign, procs.Conflict} {
		if n := c.Of(cl); n > 0 {
			counts += fmt.Sprintf(", %d %s", n, cl)
		}
	}
	if !killed {
		fmt.Fprintf(w, "\n%s", counts)
		switch {
		case r.Clean():
			fmt.Fprintln(w, ": clean")
		case c.Ghost > 0:
			fmt.Fprintln(w, ": ghosts found; check them, then run 'haguard ghosts --kill'")
		case c.Conflict > 0:
			fmt.Fprintf(w, ": another unit listens on this unit's address; stop %s (never killed: systemd would start it again)\n", strings.Join(conflictUnits(r), ", "))
		default:
			fmt.Fprintln(w, ": needs attention (divergent processes are never killed; see docs/ghosts.md)")
		}
		return
	}
	// With --kill the counts are what the sweep found; the last line is
	// the state after the kill.
	fmt.Fprintf(w, "\nfound %s\n", counts)
	removed, failed := procs.Tally(kills)
	ghosts := max(c.Ghost-removed, 0)
	did := "no ghost to kill"
	if c.Ghost > 0 {
		did = fmt.Sprintf("%d of %d %s removed", removed, c.Ghost, ghostNoun(c.Ghost, "ghost", "ghosts"))
	}
	fmt.Fprintf(w, "after --kill: %s, %d ghost and %d divergent remain", did, ghosts, c.Divergent)
	if c.Conflict > 0 {
		fmt.Fprintf(w, ", %d conflict (stop %s)", c.Conflict, strings.Join(conflictUnits(r), ", "))
	}
	fmt.Fprint(w, ": ")
	switch {
	case failed > 0:
		fmt.Fprintln(w, "a kill failed; needs a human")
	case ghosts > 0 || c.Divergent > 0:
		fmt.Fprintln(w, "needs attention (--kill never touches divergent processes; see docs/ghosts.md)")
	case c.Conflict > 0:
		fmt.Fprintln(w, "needs attention (--kill never touches another unit's haproxy; stop that unit)")
	default:
		fmt.Fprintln(w, "clean")
	}
}

// conflictUnits names the units (or containers) to stop, once each.
func conflictUnits(r procs.Report) []string {
	var out []string
	for _, p := range r.Of(procs.Conflict) {
		if u := dash(p.Unit); !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}
