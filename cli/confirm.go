package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
)

func (a *app) confirmCmd() *cobra.Command {
	var uf unitFlags
	cmd := &cobra.Command{
		Use:   "confirm [ID]",
		Short: "Make a 'reload --confirm-within' final before its watcher rolls it back",
		Long: `confirm makes the reload that awaits confirmation final (ID, when given,
must name it): its watcher stops and the history entry turns from
provisional to committed, with who confirmed it. It needs only the state
dir (no systemd, no haproxy).

Exit codes:
  0  confirmed
  1  nothing awaits confirmation (the message says what became of the
     last window: confirmed, or rolled back and why), or not that ID
  2  usage error

Examples:
  haguard reload --candidate new.cfg --confirm-within 5m
  haguard confirm`,
		Args: cobra.MaximumNArgs(1),
	}
	addUnitFlags(cmd, &uf)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		id := ""
		if len(args) == 1 {
			id = args[0]
		}
		return a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
			if uf.several() {
				return exitUsage, usagef(errors.New("--unit: confirm one unit's reload; name one unit"))
			}
			uf.apply(&cfg)
			e, err := reload.ConfirmIn(ctx, cfg.StateDir, id, who(), cfg.Reload.LockTimeout.D(), a.logger())
			if err != nil {
				return exitNegative, err // nothing pending, not that id, or the lock
			}
			werr := a.writeResult(e, func(w io.Writer) {
				fmt.Fprintf(w, "confirmed reload %s (%s → %s), due by %s: it stays\n", e.ID,
					short12(e.BeforeSHA256), short12(e.AfterSHA256), e.Confirmation.Deadline.Local().Format(time.RFC3339))
			})
			if werr != nil {
				return exitBroken, werr
			}
			return exitOK, nil
		})(c, args)
	}
	return cmd
}

// watchConfirmCmd is the watcher of a confirmation window, run by systemd
// as a transient unit (host.WatcherUnit), not by hand.
func (a *app) watchConfirmCmd() *cobra.Command {
	var uf unitFlags
	cmd := &cobra.Command{
		Use:    "watch-confirm ID",
		Short:  "Watch the confirmation window of reload ID (started by 'reload --confirm-within')",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
	}
	addUnitFlags(cmd, &uf)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		return a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
			ctx, stop := hangupStops(ctx)
			defer stop()
			log := a.logger()
			r, closeFn, err := buildReloader(ctx, cfg, uf, log)
			if err != nil {
				return exitNegative, err
			}
			defer closeFn()
			log.Info("watching the confirmation window", "id", args[0], "every", cfg.Reload.ConfirmEvery.D())
			out, err := r.Watch(ctx, args[0], cfg.Reload.ConfirmEvery.D())
			if err != nil {
				return exitNegative, err
			}
			log.Info("confirmation window closed", "id", args[0], "result", out.Result, "reason", out.Reason)
			if out.Result == reload.ConfirmRollbackFailed {
				return exitBroken, fmt.Errorf("reload %s: the automatic rollback failed: %s", args[0], out.Reason)
			}
			return exitOK, nil
		})(c, args)
	}
	return cmd
}
