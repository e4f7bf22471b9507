package main

import (
	"context"
	"errors"

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
config that ran before transaction ID ('haguard history' lists them).
Without ID it undoes the last committed transaction.

Exit codes are those of 'haguard reload'.`,
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
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return exitUsage, err
			}
			r, closeFn, err := a.buildReloader(ctx, cfg, o.unit, a.logger())
			if err != nil {
				return exitNegative, err // nothing was touched: refused
			}
			defer closeFn()
			res, err := r.RollbackTo(ctx, id, reload.Options{KillGhosts: o.killGhosts || cfg.Reload.KillGhosts,
				Reason: o.reason, Who: who()})
			if errors.Is(err, reload.ErrNoHistory) {
				return exitUsage, usagef(err)
			}
			return a.reportReload(res, err)
		})(c, args)
	}
	return cmd
}
