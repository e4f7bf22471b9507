package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/haguard/haguard/systemd"
)

// watchPort starts the watcher of a `reload --confirm-within` window as a
// transient systemd service: `haguard watch-confirm ID` with the same
// haguard.yaml and unit, outside the caller's session, so the window
// survives the terminal (and the SSH session) that opened it.
type watchPort struct{ h *Host }

// WatcherUnit is the transient unit that watches reload id's window.
func WatcherUnit(id string) string { return "haguard-confirm-" + id + ".service" }

func (w watchPort) StartWatch(ctx context.Context, id string, deadline time.Time) (string, error) {
	h := w.h
	if h.sd == nil {
		return "", errors.New("systemd is not reachable: the window needs a transient unit to outlive this command")
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("haguard's own path: %w", err)
	}
	argv := []string{exe}
	if h.cfg.File != "" {
		argv = append(argv, "--config-file", h.cfg.File)
	}
	argv = append(argv, "watch-confirm", "--unit", h.cfg.Systemd.Unit)
	if h.cfg.Systemd.BusAddress != "" {
		argv = append(argv, "--bus-address", h.cfg.Systemd.BusAddress)
	}
	argv = append(argv, id)
	name := WatcherUnit(id)
	err = h.sd.StartTransient(ctx, systemd.Transient{
		Name:        name,
		Description: fmt.Sprintf("haguard: confirmation window of reload %s (until %s)", id, deadline.UTC().Format(time.RFC3339)),
		Argv:        argv,
		// The watcher ends at the deadline; a rollback then takes at most
		// a few settle timeouts. A hung watcher must not live on.
		RuntimeMax: time.Until(deadline) + 10*time.Minute,
	})
	return name, err
}
