package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/agent/generations"
	"github.com/haguard/haguard/agent/probe"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/reload"
)

func (a *app) statusCmd() *cobra.Command {
	var uf unitFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the unit, the running generation, draining workers and config drift",
		Long: `status shows the haproxy unit's state, the master's generation (reload
counter) and workers, old workers still draining and since when, and
drift: whether the running generation was loaded from a config that
differs from the file on disk (edited without a reload, or reloaded
outside haguard). It also reports a reload that died mid-transaction.

The unit line shows systemd's StatusText (STATUS= sent by haproxy, e.g.
"Reload failed!") only when there is one. --format json prints the same
facts as one document (docs/reload.md); "status_text" is "" when there is
none.

Exit codes:
  0  the unit is active and runs the config on disk
  1  drift (the disk against what runs, or a server whose runtime
     state, weight or address differs from its config line: changed on
     the runtime API and not written), an interrupted transaction, or
     haproxy's master counts a failed reload since its last good one
     (show proc "failed")
  2  usage error, unreadable haguard.yaml or state dir
  3  the unit is not active, systemd cannot be reached, or the journal
     of a dead run is unreadable (every reload refuses until
     'haguard reload --forget-interrupted')

While a reload is in progress (the unit is "reloading"), status waits for
it to end, up to reload.settle_timeout, and reports its outcome.

Examples:
  haguard status
  haguard status --unit haproxy-edge.service --format json | jq .drift_reason`,
		Args: cobra.NoArgs,
	}
	addUnitFlags(cmd, &uf)
	cmd.RunE = a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
		return a.forUnits(ctx, cfg, uf, a.statusOf)
	})
	return cmd
}

// statusOf is the status of cfg's unit, and its exit code.
func (a *app) statusOf(ctx context.Context, cfg config.Config) unitResult {
	h, closeFn, err := openHost(ctx, cfg, unitFlags{}, a.logger())
	if err != nil {
		if isUsage(err) {
			return unitResult{code: exitUsage, err: err}
		}
		return unitResult{code: exitBroken, err: err}
	}
	defer closeFn()
	r, err := h.Reloader()
	if err != nil {
		return unitResult{code: exitBroken, err: err}
	}
	rst, err := r.Status(ctx, true)
	if err != nil {
		return unitResult{code: exitUsage, err: err}
	}
	st := statusDoc{Status: rst, Discovery: h.Discovery()}
	if rep, err := h.Scanner().Sweep(ctx); err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("sweep: %v", err))
	} else {
		st.Sweep = &rep.Counts
		g := generations.Assess(rep, generations.ReadRSS, time.Now(), generations.LimitsFrom(cfg.Generations), cfg.Generations.Enforce)
		if steps, err := generations.ReadLog(filepath.Join(cfg.StateDir, generations.LogFile)); err == nil {
			generations.Annotate(&g, steps)
		}
		st.Generations = &g
		for _, p := range rep.Processes {
			if p.Class == procs.Ghost || p.Class == procs.Divergent || p.Class == procs.Conflict {
				st.Bad = append(st.Bad, fmt.Sprintf("pid %d %s: %s", p.PID, p.Class, p.Reason))
			}
		}
	}
	if rt, err := h.Runtime(); err == nil {
		if rows, err := host.ServerRows(ctx, rt, h.Config().HAProxy.Configs, ""); err != nil {
			st.Errors = append(st.Errors, fmt.Sprintf("runtime servers: %v", err))
		} else {
			st.RuntimeDrift = []string{}
			for _, r := range rows {
				for _, d := range r.Drift {
					st.RuntimeDrift = append(st.RuntimeDrift, fmt.Sprintf("%s/%s: %s", r.Backend, r.Server, d))
				}
			}
		}
	}
	if sock := h.StatsSocket(nil); sock != "" {
		if hl, err := probe.ReadHealth(ctx, sock); err != nil {
			st.Errors = append(st.Errors, fmt.Sprintf("backend health: %v", err))
		} else {
			st.Backends = &hl
		}
	}
	code := exitOK
	switch {
	case st.InProgress != nil && st.ActiveState != "failed" && st.ActiveState != "":
		// A transaction is at work: what runs and what is on disk are
		// its business until it ends.
	case st.ActiveState != "active" || st.Stuck != "" || st.JournalError != "":
		code = exitBroken
	case st.Drift || len(st.RuntimeDrift) > 0 || st.Interrupted != nil || st.Failed > 0 || len(st.Bad) > 0 || st.Backends != nil && len(st.Backends.BackendsDown) > 0:
		code = exitNegative
	}
	return unitResult{code: code, doc: st, human: func(w io.Writer) { writeStatusHuman(w, st) }}
}

// statusDoc is `haguard status --format json`: reload's status and what
// the unit was found to run, with where each fact came from.
type statusDoc struct {
	reload.Status
	Discovery host.Discovery `json:"discovery"`
	// Sweep counts haproxy's processes by class, from a sweep made now;
	// Bad names the ghost and divergent ones.
	Sweep *procs.Counts `json:"sweep,omitempty"`
	Bad   []string      `json:"bad_processes,omitempty"`
	// Generations are the worker generations against haguard.yaml's
	// generations limits, from the same sweep, with the latest
	// escalation step `haguard serve` logged for each (docs/generations.md).
	Generations *generations.Report `json:"generations,omitempty"`
	// Backends is every server's health now (show stat), when there is a
	// stats socket.
	Backends *probe.Health `json:"backends,omitempty"`
	// RuntimeDrift lists the servers whose state in the current worker
	// differs from their config line (maint against "disabled", weight,
	// address): a change made at runtime and not written (docs/runtime.md).
	// Absent when there is none, or without a master CLI.
	RuntimeDrift []string `json:"runtime_drift,omitempty"`
}

func writeStatusHuman(w io.Writer, st statusDoc) {
	switch {
	case st.ActiveState == "":
		fmt.Fprintf(w, "unit:       %s state unknown (see the errors below)\n", st.Unit)
	case st.StatusText == "":
		// No STATUS= from the unit: say nothing rather than print "".
		fmt.Fprintf(w, "unit:       %s %s/%s (main pid %d)\n", st.Unit, st.ActiveState, st.SubState, st.MainPID)
	default:
		fmt.Fprintf(w, "unit:       %s %s/%s (main pid %d), status %q\n", st.Unit, st.ActiveState, st.SubState, st.MainPID, st.StatusText)
	}
	if st.Generation >= 0 {
		fmt.Fprintf(w, "generation: %d (failed reloads since last success: %d), %d workers\n", st.Generation, st.Failed, st.Workers)
		if st.OldWorkers > 0 && st.OldestDraining != nil {
			fmt.Fprintf(w, "draining:   %d old workers, oldest since %s\n", st.OldWorkers, st.OldestDraining.Format("2006-01-02 15:04:05Z"))
		} else {
			fmt.Fprintln(w, "draining:   none")
		}
	}
	d := st.Discovery
	fmt.Fprintf(w, "runs:       %s -f %s\n            (from the %s)\n", d.Binary.Value, strings.Join(d.Configs, " -f "), d.ConfigsFrom)
	if d.MasterSocket.Value != "" {
		fmt.Fprintf(w, "master CLI: %s\n", d.MasterSocket.Value)
	} else {
		fmt.Fprintln(w, "master CLI: none (no -S): generations read from the process table")
	}
	for _, n := range d.Notes {
		fmt.Fprintf(w, "note:       %s\n", n)
	}
	fmt.Fprintf(w, "config:     %s sha256 %s\n", st.Target, short12(st.DiskSHA256))
	if st.Drift {
		fmt.Fprintf(w, "drift:      YES: %s\n", st.DriftReason)
	} else {
		fmt.Fprintf(w, "drift:      none (running %s)\n", short12(st.RunningSHA256))
	}
	// Said only when there is some, as in JSON (runtime_drift is absent
	// when none).
	for _, d := range st.RuntimeDrift {
		fmt.Fprintf(w, "runtime:    DRIFT %s\n", d)
	}
	if c := st.Sweep; c != nil {
		line := fmt.Sprintf("processes:  %d current, %d draining, %d ghost, %d divergent", c.Current, c.Draining, c.Ghost, c.Divergent)
		if c.Conflict > 0 {
			line += fmt.Sprintf(", %d conflict (another unit's, on our address)", c.Conflict)
		}
		if n := c.OtherUnit + c.Foreign; n > 0 {
			line += fmt.Sprintf("; %d of other units or namespaces (left alone)", n)
		}
		fmt.Fprintln(w, line)
		for _, b := range st.Bad {
			fmt.Fprintf(w, "            %s\n", b)
		}
	}
	if g := st.Generations; g != nil && g.Over > 0 {
		mode := "generations.enforce is off: reported only"
		if g.Enforce {
			mode = "haguard serve escalates them"
		}
		if g.Unsettled != "" {
			mode += "; this sweep is unsettled: " + g.Unsettled
		}
		fmt.Fprintf(w, "limits:     %d of %d draining generations over the generations limits (%s)\n", g.Over, g.Draining, mode)
		for _, x := range g.Exceeded() {
			line := fmt.Sprintf("            generation %d (pids %v): over %s, age %s, rss %d MiB", x.Generation, x.PIDs,
				strings.Join(x.Over, "+"), time.Duration(x.AgeSeconds*float64(time.Second)).Round(time.Second), x.RSSBytes>>20)
			if e := x.Escalation; e != nil {
				line += fmt.Sprintf("; escalation: %s at %s", e.Step, e.At.UTC().Format("15:04:05Z"))
			}
			fmt.Fprintln(w, line)
		}
	}
	if b := st.Backends; b != nil {
		up := 0
		for _, s := range b.Servers {
			if !s.Down() {
				up++
			}
		}
		fmt.Fprintf(w, "backends:   %d of %d servers up\n", up, len(b.Servers))
		for _, d := range b.BackendsDown {
			fmt.Fprintf(w, "            backend %s (%s): down %s, %d up\n", d.Backend, d.Status, strings.Join(d.ServersDown, ", "), d.ServersUp)
		}
	}
	if p := st.Pending; p != nil {
		fmt.Fprintf(w, "confirm:    reload %s awaits confirmation until %s (watcher %s): haguard confirm %s\n",
			p.ID, p.Deadline.Local().Format(time.RFC3339), p.Watcher, p.ID)
	}
	if st.Stuck != "" {
		fmt.Fprintf(w, "STUCK:      %s\n", st.Stuck)
	}
	if p := st.InProgress; p != nil {
		stage := p.Stage
		if stage == "" {
			stage = "check"
		}
		fmt.Fprintf(w, "reload:     in progress (pid %d, stage %s, since %s)\n", p.PID, stage, p.Since.UTC().Format("2006-01-02 15:04:05Z"))
	}
	if j := st.Interrupted; j != nil {
		fmt.Fprintf(w, "interrupted: transaction %s (pid %d) died at stage %s; the next 'haguard reload' finishes it\n", j.ID, j.PID, j.Stage)
	}
	if st.JournalError != "" {
		fmt.Fprintf(w, "JOURNAL:    UNREADABLE: %s; a run died and what it left is unknown: every reload refuses (exit 3) until "+
			"'haguard reload --forget-interrupted' (its recover stage says what the target holds)\n", st.JournalError)
	}
	if e := st.Last; e != nil {
		line := fmt.Sprintf("last:       %s %s by %s", e.ID, e.Outcome, dash(e.Who))
		if e.Reason != "" {
			line += fmt.Sprintf(" (%s)", oneLine(e.Reason, 60))
		}
		if e.Error != "" {
			line += ": " + oneLine(e.Error, 120)
		}
		fmt.Fprintln(w, line)
	}
	for _, e := range st.Errors {
		fmt.Fprintf(w, "error:      %s\n", e)
	}
}
