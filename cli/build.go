package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
)

// openHost dials systemd and opens the host that cfg (with the command's
// unit flags) names, discovering what its unit runs. close releases the
// D-Bus connection. A haguard.yaml that contradicts the unit is a usage
// error (exit 2).
func openHost(ctx context.Context, cfg config.Config, uf unitFlags, log *slog.Logger) (*host.Host, func(), error) {
	uf.apply(&cfg)
	// The connection outlives ctx: godbus closes a connection when its dial
	// context ends, and a Ctrl-C during the transaction must not cut the bus
	// under the rollback that the cancellation itself triggers.
	sd, err := systemd.Dial(context.WithoutCancel(ctx), cfg.Systemd.BusAddress)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to systemd: %w", err)
	}
	h, err := host.Open(ctx, cfg, sd, log)
	if err != nil {
		sd.Close()
		return nil, nil, usagef(err)
	}
	return h, sd.Close, nil
}

// openHostBestEffort is openHost for commands that work without systemd
// (check, ghosts): when the bus cannot be reached, haguard.yaml (else
// Debian's defaults) says what runs, and the discovery notes why.
func openHostBestEffort(ctx context.Context, cfg config.Config, uf unitFlags, log *slog.Logger) (*host.Host, func(), error) {
	uf.apply(&cfg)
	sd, err := systemd.Dial(ctx, cfg.Systemd.BusAddress)
	if err != nil {
		h, cerr := host.OpenWithoutSystemd(cfg, err, log)
		if cerr != nil {
			return nil, nil, usagef(cerr)
		}
		return h, func() {}, nil
	}
	h, err := host.Open(ctx, cfg, sd, log)
	if err != nil {
		sd.Close()
		return nil, nil, usagef(err)
	}
	return h, sd.Close, nil
}

// buildReloader opens the host and builds its Reloader.
func buildReloader(ctx context.Context, cfg config.Config, uf unitFlags, log *slog.Logger) (*reload.Reloader, func(), error) {
	h, closeFn, err := openHost(ctx, cfg, uf, log)
	if err != nil {
		return nil, nil, err
	}
	r, err := h.Reloader()
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return r, closeFn, nil
}

// auditRefused records in audit.log a reload refused before its
// transaction could start (systemd or the master unreachable): automation
// reading the log sees every run. A failure to write it is logged.
func (a *app) auditRefused(cfg config.Config, reason string, start time.Time, why error) {
	rec := reload.AuditRecord{Who: who(), Reason: reason}
	if len(cfg.HAProxy.Configs) > 0 {
		rec.Target = cfg.HAProxy.Configs[0]
	}
	rec.Result.DurationMS = time.Since(start).Milliseconds()
	if err := reload.AuditRefused(cfg.StateDir, rec, start, why); err != nil {
		a.logger().Error("audit log", "err", err)
	}
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
