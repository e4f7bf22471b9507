package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/validate"
)

type reloadOpts struct {
	candidate  string
	dryRun     bool
	killGhosts bool
	force      bool
	strict     bool
	skipLint   []string
	forget     bool
	reason     string
	confirm    time.Duration
	noWait     bool
	unit       unitFlags
}

func (a *app) reloadCmd() *cobra.Command {
	var o reloadOpts
	cmd := &cobra.Command{
		Use:   "reload [--candidate FILE]",
		Short: "Reload haproxy as a transaction: check, snapshot, install, reload, verify, or roll back",
		Long: `reload is a drop-in for 'systemctl reload haproxy' that cannot leave the host
worse than it found it (docs/reload.md):

  check     lint + 'haproxy -c' on the candidate; refuse on errors
  snapshot  keep the running config in the history (state_dir/history)
  install   write the candidate in place atomically (same mode and owner)
  reload    reload the unit over D-Bus and wait for the job
  settle    wait for the master's reload counter to move, its failed
            counter not to, and a new generation of workers to be up
  sweep     ghost or divergent haproxy processes fail the reload
            (unless --kill-ghosts), and so does another unit's haproxy
            on our address (conflict: never killed)
  probe     connect through every listener, then judge the servers once
            their first checks are done (reload.backends)
  commit    or roll back: restore the snapshot, reload, verify again

With --confirm-within D the reload commits provisionally, as network gear
does: a watcher (a transient systemd unit, so it outlives this terminal)
keeps probing and reading backend health, and rolls back by itself when
'haguard confirm' does not come within D, or at once when probes fail or a
backend loses its UP servers. Other reloads are refused meanwhile.

Reloads are kept reload.min_interval apart (default 5s, the Data Plane
API's reload_delay): a reload sooner after the last one waits it out and
says so, or with --no-wait fails at once (exit 1). A reload while haproxy
still loads the previous one (the unit is "reloading") is refused.

Without --candidate it reloads the file on disk in place. A config that
already runs is "unchanged": nothing is reloaded, sweep and probe still run
(--force reloads anyway).

Exit codes: 0 committed (or unchanged and verified); 1 refused, rolled back
cleanly, or unchanged but verification failed; 2 usage error; 3 the
rollback failed, the unit failed or haproxy's master is stuck (it never
takes the reload signal): the host needs a human.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&o.candidate, "candidate", "", "config file to install in place of the running one")
	f.BoolVar(&o.dryRun, "dry-run", false, "run the check and print the plan; change nothing")
	f.BoolVar(&o.killGhosts, "kill-ghosts", false, "kill ghost and divergent haproxy processes instead of failing")
	f.BoolVar(&o.force, "force", false, "reload even when the config is unchanged")
	f.BoolVar(&o.strict, "strict", false, "refuse on any error finding, also one the running config already has")
	listVarP(f, &o.skipLint, "skip-lint", "", true, "silence these rules for this run (an emergency; recorded in the audit log)")
	f.StringVar(&o.reason, "reason", "", "why, for the history and audit log")
	f.DurationVar(&o.confirm, "confirm-within", 0, "commit provisionally: roll back by itself unless 'haguard confirm' comes within this time (e.g. 5m), or earlier if probes or backends degrade meanwhile")
	f.BoolVar(&o.noWait, "no-wait", false, "inside reload.min_interval of the last reload, fail at once (exit 1) instead of waiting it out")
	f.BoolVar(&o.forget, "forget-interrupted", false, "drop the journal of a reload that died, instead of completing its rollback (when that rollback keeps failing)")
	addUnitFlags(cmd, &o.unit)
	cmd.RunE = a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
		ctx, stop := hangupStops(ctx)
		defer stop()
		if o.unit.several() && o.candidate != "" {
			return exitUsage, usagef(errors.New("--candidate goes with one unit: each unit has its own config"))
		}
		if o.confirm != 0 && (o.confirm < 5*time.Second || o.confirm > 24*time.Hour) {
			return exitUsage, usagef(fmt.Errorf("--confirm-within %s: want between 5s and 24h", o.confirm))
		}
		if o.confirm != 0 && o.dryRun {
			return exitUsage, usagef(errors.New("--confirm-within with --dry-run: a dry run commits nothing"))
		}
		cfg.Reload.KillGhosts = cfg.Reload.KillGhosts || o.killGhosts
		return a.forUnits(ctx, cfg, o.unit, func(ctx context.Context, cfg config.Config) unitResult {
			start := time.Now()
			r, closeFn, err := buildReloader(ctx, cfg, unitFlags{}, a.reportLogger())
			if err != nil {
				if !o.dryRun {
					a.auditRefused(cfg, o.reason, start, err)
				}
				return unitResult{code: exitNegative, err: err} // nothing was touched: refused
			}
			defer closeFn()
			progress, live := a.progress(o.unit.several())
			res, err := r.Run(ctx, reload.Options{Candidate: o.candidate, DryRun: o.dryRun,
				KillGhosts: cfg.Reload.KillGhosts, Force: o.force, ForgetInterrupted: o.forget, Reason: o.reason, Who: who(),
				Strict: o.strict, SkipLint: o.skipLint, ConfirmWithin: o.confirm, NoWait: o.noWait, Progress: progress})
			return reloadResult(res, err, live)
		})
	})
	return cmd
}

// reloadResult is a transaction as the commands report it: the Result
// (whose human form says why it failed), or only the error when the run
// did not start (the lock was busy). live is the view that showed the run
// as it happened (nil: none); the report leaves out what it showed.
func reloadResult(res reload.Result, err error, live *liveView) unitResult {
	if live != nil {
		live.close()
	}
	code := reloadExit(res, err)
	if errors.Is(err, reload.ErrLocked) || res.ID == "" {
		return unitResult{code: code, err: err}
	}
	return unitResult{code: code, doc: res, human: func(w io.Writer) { writeReloadHuman(w, res, err, live) }}
}

// reportReload prints res and maps it to an exit code.
func (a *app) reportReload(res reload.Result, err error, live *liveView) (int, error) {
	r := reloadResult(res, err, live)
	if r.doc != nil {
		if werr := a.writeResult(r.doc, r.human); werr != nil {
			return exitBroken, werr
		}
	}
	return r.code, r.err
}

func reloadExit(res reload.Result, err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, reload.ErrBroken) || res.Broken:
		return exitBroken
	case errors.Is(err, reload.ErrUnchanged) && res.OK:
		return exitOK
	default:
		return exitNegative
	}
}

// ticker prints one checklist line: [x] when ok, [!] when not.
type ticker func(ok bool, format string, args ...any)

// writeReloadHuman prints the seed runbook's checklist, ticked: the
// findings with their fix and haproxy's errors each once, a line per
// stage, a dry run's plan and diff, the verdict, and the reason when no
// line above said it. Stages the live view showed are not printed again.
func writeReloadHuman(w io.Writer, res reload.Result, err error, live *liveView) {
	tick := func(ok bool, format string, args ...any) {
		fmt.Fprintf(w, "%s %s\n", mark(ok), fmt.Sprintf(format, args...))
	}
	if !live.headerShown() {
		fmt.Fprintf(w, "haguard reload %s\n", res.ID)
	}
	diags := validate.ParseDiagnostics(res.CheckOutput)
	for _, s := range res.Stages {
		if live.shownStage(s.Name) {
			continue
		}
		switch s.Name {
		case reload.StageCheck:
			writeCheckDetails(w, res.Findings, diags)
			alerts, _ := validate.CountDiagnostics(diags)
			tick(s.OK, "%s", stageText(s, alerts))
			if res.Unchanged {
				fmt.Fprintln(w, "[x] unchanged: the config on disk already runs; not reloaded")
			}
		case reload.StageSettle:
			if g := res.Settle; s.OK && g != nil {
				tick(true, "generation %d running (%d workers)", g.Generation, g.Workers)
				if g.OldWorkers > 0 {
					tick(true, "old generation draining (%d workers, since %s)", g.OldWorkers, g.OldestDraining.Format(time.RFC3339))
				}
			} else {
				tick(false, "%s", stageText(s, 0))
			}
		case reload.StageSnapshot:
			// A snapshot with nothing to roll back to is a warning: a
			// failure after the install would need a human.
			tick(s.OK && (res.Snapshot == nil || res.Snapshot.Identity != ""), "%s", stageText(s, 0))
		case reload.StageProbe:
			writeProbeLines(tick, s, res.Probes)
		default:
			tick(s.OK, "%s", stageText(s, 0))
		}
	}
	if live != nil && res.Unchanged && !res.DryRun {
		fmt.Fprintln(w, "[x] unchanged: the config on disk already runs; not reloaded")
	}
	if res.DryRun {
		for _, p := range res.Plan {
			fmt.Fprintf(w, "    plan: %s\n", p)
		}
		if res.Diff != nil {
			writeDiffHuman(w, *res.Diff)
		}
		fmt.Fprintln(w, "dry run: nothing changed")
		return
	}
	verdict := "COMMITTED"
	switch {
	case res.Pending != nil && err == nil:
		verdict = "COMMITTED PROVISIONALLY"
		defer fmt.Fprintf(w, "confirm it with `haguard confirm %s` before %s, or it rolls back by itself\n",
			res.ID, res.Pending.Deadline.Local().Format(time.RFC3339))
	case res.Broken:
		verdict = "HOST NEEDS A HUMAN (rollback failed or unit failed)"
	case res.RolledBack:
		verdict = "ROLLED BACK"
	case res.Raced != nil:
		verdict = "RACED (the config changed on disk during the reload; not recorded as running)"
	case res.Unchanged && res.OK:
		verdict = "UNCHANGED, verified"
	case res.Unchanged:
		verdict = "UNCHANGED, verification FAILED"
	case err != nil:
		verdict = "REFUSED"
	}
	fmt.Fprintf(w, "%s in %d ms\n", verdict, res.DurationMS)
	for _, u := range res.Unrecorded {
		fmt.Fprintf(w, "warning: not recorded (the config and what runs are as above): %s\n", u)
	}
	if err != nil && !errors.Is(err, reload.ErrUnchanged) && !saidByStages(err, res.Stages) {
		fmt.Fprintf(w, "reason: %v\n", err)
	}
}

// stageText is a stage's checklist line, without its mark. alerts are
// the errors of haproxy -c, printed above the check's line, which then
// only counts them.
func stageText(s reload.Stage, alerts int) string {
	line := func(label string) string {
		switch {
		case s.OK && label == "":
			return s.Detail
		case s.OK:
			return label + ": " + s.Detail
		case s.Detail != "" && label != "":
			return label + ": " + s.Detail + ": " + s.Error
		case s.Detail != "":
			return s.Detail + ": " + s.Error
		case label != "":
			return label + ": " + s.Error
		}
		return s.Error
	}
	switch s.Name {
	case reload.StageRecover:
		return line("previous run")
	case reload.StageCheck:
		switch {
		case s.OK:
			return line("config valid")
		case alerts > 0 && strings.HasPrefix(s.Error, "haproxy -c: "):
			return fmt.Sprintf("config invalid: haproxy -c found %d error(s), above", alerts)
		case strings.HasSuffix(s.Error, " error findings"):
			return fmt.Sprintf("config refused by the lint: %s, above (%s)", s.Error, s.Detail)
		}
		return line("check failed")
	case reload.StageReload:
		if s.OK {
			return s.Detail
		}
		return line("reload failed")
	case reload.StageSettle:
		return line("new generation")
	case reload.StageRestore:
		return line("runtime server state")
	case reload.StageSweep, reload.StageProbe:
		return line("")
	case reload.StageWatch:
		return line("confirmation window")
	case reload.StageRollback:
		if s.OK {
			return line("rolled back")
		}
		return line("rollback FAILED")
	}
	return line(s.Name)
}

// writeCheckDetails prints the findings with their fix, then haproxy -c's
// errors and warnings as file:line: severity: message, each once.
func writeCheckDetails(w io.Writer, fs []reload.Finding, ds []validate.Diagnostic) {
	for _, f := range fs {
		fmt.Fprintf(w, "    %s:%d: %s %s: %s\n", f.File, f.Line, f.Severity, f.Rule, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(w, "        fix: %s\n", f.Fix)
		}
	}
	for _, d := range ds {
		fmt.Fprintf(w, "    %s\n", d)
	}
}

// saidByStages reports whether a failed stage's line already says what
// err says (the usual case: the reason would repeat it).
func saidByStages(err error, stages []reload.Stage) bool {
	for _, s := range stages {
		if !s.OK && s.Error != "" && strings.Contains(err.Error(), s.Error) {
			return true
		}
	}
	return false
}

// writeProbeLines ticks the probe totals and the backends' health.
func writeProbeLines(tick ticker, s reload.Stage, rep reload.ProbeReport) {
	if rep.Total == 0 && len(rep.Servers) == 0 {
		// Probing disabled, or the probe could not run at all.
		if s.OK || s.Detail == "" {
			tick(s.OK, "%s", cmp.Or(s.Detail, s.Error))
		} else {
			tick(false, "%s: %s", s.Detail, s.Error)
		}
		return
	}
	probes := fmt.Sprintf("probes: %d/%d OK", rep.OK, rep.Total)
	if !s.OK {
		probes += ": " + s.Error
	}
	tick(s.OK, "%s", probes)
	if len(rep.Servers) == 0 {
		return
	}
	if notUp := rep.NotUp(); len(notUp) > 0 {
		tick(false, "backends not UP: %s", strings.Join(notUp, ", "))
		return
	}
	tick(true, "backends: %d servers UP (%s)", len(rep.Servers), rep.CheckTally())
}
