package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
)

func (a *app) execReloadCmd() *cobra.Command {
	var uf unitFlags
	cmd := &cobra.Command{
		Use:    "exec-reload --unit UNIT",
		Short:  "The ExecReload= of haguard's drop-in: a plain 'systemctl reload' as a haguard transaction",
		Hidden: true,
		Long: `exec-reload is what haproxy.service runs on 'systemctl reload' once haguard's
drop-in is switched on (haguard doctor --enable-dropin; docs/reload.md,
"systemctl reload"). It is not meant to be run by hand.

Inside the unit's reload job it runs a reload transaction on the config
set on disk: lint and 'haproxy -c', snapshot, USR2 to the master, the new
generation, the sweep and the probes, and a rollback when they fail. Its
report goes to the journal; a refusal or a rollback exits non-zero, which
fails the job, so 'systemctl reload' fails and 'systemctl status' shows
why.

When the job is one that haguard itself asked for (haguard reload or
rollback, the API: its transaction holds the lock at its reload stage),
it only signals the master: that transaction checks and verifies. When a
transaction holds the lock at another stage, it refuses at once rather
than reload under it.

Exit codes: 0 reloaded and verified (or signalled for haguard's own
transaction); 1 refused or rolled back; 2 usage error; 3 the host needs a
human.`,
		Args: cobra.NoArgs,
	}
	addUnitFlags(cmd, &uf)
	cmd.RunE = a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
		if len(uf.units) != 1 || uf.several() {
			return exitUsage, usagef(errors.New("--unit: name the one unit whose reload job runs this (%n in the drop-in)"))
		}
		uf.apply(&cfg)
		ctx, stop := hangupStops(ctx)
		defer stop()
		return a.execReload(ctx, cfg)
	})
	return cmd
}

// execReload runs inside the unit's reload job.
func (a *app) execReload(ctx context.Context, cfg config.Config) (int, error) {
	unit := cfg.Systemd.Unit
	for attempt := 0; ; attempt++ {
		d, driven, err := reload.DriverOf(ctx, cfg.StateDir)
		switch {
		case driven:
			pid, err := mainPID(ctx, cfg)
			if err != nil {
				return exitNegative, err
			}
			fmt.Fprintf(a.stdout, "haguard exec-reload: this is the reload of haguard transaction %s (%s, stage %s), which checks and verifies it; sending USR2 to the master (pid %d)\n",
				d.ID, d.Holder, d.Stage, pid)
			if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
				return exitNegative, fmt.Errorf("signal the master (pid %d): %w", pid, err)
			}
			return exitOK, nil
		case err != nil:
			fmt.Fprintf(a.stdout, "haguard exec-reload: REFUSED: %v\n", err)
			return exitNegative, nil
		}
		h, closeFn, err := openHost(ctx, cfg, unitFlags{}, a.reportLogger())
		if err != nil {
			return exitNegative, err
		}
		r, err := h.ReloaderInJob()
		if err != nil {
			closeFn()
			return exitNegative, err
		}
		res, err := r.Run(ctx, reload.Options{InReloadJob: true, Force: true, KillGhosts: cfg.Reload.KillGhosts,
			Who: "systemd", Reason: "systemctl reload " + unit})
		closeFn()
		if errors.Is(err, reload.ErrLocked) && res.ID == "" && attempt == 0 {
			// A transaction took the lock in between: whose is it now?
			continue
		}
		return a.reportReload(res, err, nil)
	}
}

// mainPID is haproxy's master: $MAINPID, which systemd gives ExecReload,
// else the unit's MainPID.
func mainPID(ctx context.Context, cfg config.Config) (int, error) {
	if pid, err := strconv.Atoi(os.Getenv("MAINPID")); err == nil && pid > 0 {
		return pid, nil
	}
	sd, err := systemd.Dial(ctx, cfg.Systemd.BusAddress)
	if err != nil {
		return 0, fmt.Errorf("connect to systemd: %w", err)
	}
	defer sd.Close()
	u, err := sd.Unit(ctx, cfg.Systemd.Unit)
	if err != nil {
		return 0, err
	}
	if u.MainPID <= 0 {
		return 0, fmt.Errorf("%s has no main process to signal", cfg.Systemd.Unit)
	}
	return int(u.MainPID), nil
}
