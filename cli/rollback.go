package cli

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/reload"
)

func (a *app) rollbackCmd() *cobra.Command {
	var o reloadOpts
	cmd := &cobra.Command{
		Use:   "rollback [ID]",
		Short: "Undo a reload: reinstall the config that ran before transaction ID (default: the last committed one)",
		Long: `rollback reinstalls, as a full reload transaction (check, snapshot, reload,
settle, sweep, probe, and a rollback of the rollback if that fails), the
config that ran before transaction ID. 'haguard history' lists the ids.
Without ID it undoes the last committed transaction.

A transaction is a target only if haguard kept a snapshot of the config
before it: a refused transaction installed nothing and is not one, nor is
a first in-place reload (no known-good config) or an id pruned by
reload.history_keep. These are refused with exit 2 before systemd is
contacted. The rollback itself is recorded in the history ('rollback of
ID' in its reason).

Exit codes (those of 'haguard reload'):
  0  the old config is installed, settled, swept and probed
  1  refused (check failed, lock busy, systemd or the master CLI
     unreachable), or it failed and was rolled back cleanly
  2  usage error, or ID is not a rollback target (unknown, pruned,
     refused, or without a snapshot)
  3  the host needs a human: the rollback of the rollback failed, or
     the unit failed

Examples:
  haguard history --limit 5
  haguard rollback                                   # undo the last commit
  haguard rollback 20261128T015742.123Z-1a2b --reason "INC-4411"`,
		Args: cobra.MaximumNArgs(1),
	}
	f := cmd.Flags()
	f.BoolVar(&o.killGhosts, "kill-ghosts", false, "kill ghost and divergent haproxy processes instead of failing")
	f.StringVar(&o.reason, "reason", "", "why, for the history and audit log")
	addUnitFlags(cmd, &o.unit)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		id := ""
		if len(args) == 1 {
			id = args[0]
		}
		return a.exec(func(ctx context.Context) (int, error) {
			ctx, stop := hangupStops(ctx)
			defer stop()
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return exitUsage, err
			}
			if o.unit.several() {
				return exitUsage, usagef(errors.New("--unit: rollback undoes one unit's transaction; name one unit"))
			}
			o.unit.apply(&cfg) // the unit's own state dir
			// Check the target first: a wrong id is the caller's error and
			// needs no systemd to be told.
			if _, err := reload.RollbackTarget(cfg.StateDir, id); err != nil {
				if errors.Is(err, reload.ErrNoHistory) {
					return exitUsage, usagef(err)
				}
				return exitUsage, err
			}
			start := time.Now()
			r, closeFn, err := buildReloader(ctx, cfg, unitFlags{}, a.reportLogger())
			if err != nil {
				a.auditRefused(cfg, o.reason, start, err)
				return exitNegative, err // nothing was touched: refused
			}
			defer closeFn()
			progress, live := a.progress(false)
			res, err := r.RollbackTo(ctx, id, reload.Options{KillGhosts: o.killGhosts || cfg.Reload.KillGhosts,
				Reason: o.reason, Who: who(), Progress: progress})
			if errors.Is(err, reload.ErrNoHistory) {
				live.close()
				return exitUsage, usagef(err)
			}
			return a.reportReload(res, err, live)
		})(c, args)
	}
	return cmd
}
