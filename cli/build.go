package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
)

// unitFlags are the per-command overrides of haguard.yaml's systemd block.
type unitFlags struct {
	unit, busAddress string
}

func addUnitFlags(cmd *cobra.Command, u *unitFlags) {
	cmd.Flags().StringVar(&u.unit, "unit", "", "systemd unit (default: systemd.unit in haguard.yaml)")
	cmd.Flags().StringVar(&u.busAddress, "bus-address", "", "D-Bus address (default: systemd.bus_address, else the system bus)")
}

func (u unitFlags) apply(cfg *config.Config) {
	if u.unit != "" {
		cfg.Systemd.Unit = u.unit
	}
	if u.busAddress != "" {
		cfg.Systemd.BusAddress = u.busAddress
	}
}

// buildReloader dials systemd and builds the host's Reloader, with the
// command's unit flags over haguard.yaml. close releases the D-Bus
// connection.
func buildReloader(ctx context.Context, cfg config.Config, uf unitFlags, log *slog.Logger) (*reload.Reloader, func(), error) {
	uf.apply(&cfg)
	// The connection outlives ctx: godbus closes a connection when its dial
	// context ends, and a Ctrl-C during the transaction must not cut the bus
	// under the rollback that the cancellation itself triggers.
	sd, err := systemd.Dial(context.WithoutCancel(ctx), cfg.Systemd.BusAddress)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to systemd: %w", err)
	}
	r, err := host.New(cfg, sd, log).Reloader()
	if err != nil {
		sd.Close()
		return nil, nil, err
	}
	return r, sd.Close, nil
}

// who names the person behind a run for the audit log.
func who() string {
	u := os.Getenv("SUDO_USER")
	if u == "" {
		if cu, err := user.Current(); err == nil {
			u = cu.Username
		} else {
			u = "uid " + strconv.Itoa(os.Getuid())
		}
	}
	return u
}
