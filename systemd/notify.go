package systemd

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Notifier speaks sd_notify for haguard's own daemon. Outside systemd
// (no $NOTIFY_SOCKET) every call is a no-op that returns nil: that is
// go-systemd's (false, nil) and not an error.
type Notifier struct {
	// send defaults to daemon.SdNotify; tests replace it.
	send func(unsetEnv bool, state string) (bool, error)
	// watchdog defaults to daemon.SdWatchdogEnabled.
	watchdog func(unsetEnv bool) (time.Duration, error)
}

// NewNotifier returns a Notifier that writes to $NOTIFY_SOCKET.
func NewNotifier() *Notifier {
	return &Notifier{send: daemon.SdNotify, watchdog: daemon.SdWatchdogEnabled}
}

func (n *Notifier) notify(state string) error {
	if _, err := n.send(false, state); err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return nil
}

// Ready tells systemd that startup (or a reload) is finished: READY=1.
func (n *Notifier) Ready() error { return n.notify(daemon.SdNotifyReady) }

// Reloading tells systemd that the daemon reloads its configuration:
// RELOADING=1 with MONOTONIC_USEC, which Type=notify-reload requires.
// Call Ready when done.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return n.notify(daemon.SdNotifyReloading)
	}
	usec := ts.Sec*1_000_000 + ts.Nsec/1_000
	return n.notify(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", daemon.SdNotifyReloading, usec))
}

// Stopping tells systemd that the daemon is shutting down: STOPPING=1.
func (n *Notifier) Stopping() error { return n.notify(daemon.SdNotifyStopping) }

// Status sets the free-form STATUS= line `systemctl status` shows.
func (n *Notifier) Status(s string) error { return n.notify("STATUS=" + s) }

// WatchdogInterval is half of WATCHDOG_USEC (systemd's advice for the
// longest gap between pings), or 0 when systemd does not watch this
// process.
func (n *Notifier) WatchdogInterval() (time.Duration, error) {
	d, err := n.watchdog(false)
	if err != nil {
		return 0, fmt.Errorf("watchdog: %w", err)
	}
	return d / 2, nil
}

// RunWatchdog sends WATCHDOG=1 until ctx ends, then returns nil. Without
// a watchdog it waits for ctx and returns nil. healthy, if not nil, is
// asked before each ping, with a context bounded to the tick; a false
// answer skips the ping so that systemd restarts a stuck daemon.
//
// It asks every quarter of the watchdog period, and each check may take
// at most that quarter: pings come about a quarter period apart, and one
// or two slow or failed checks in a row (a loaded host) still leave the
// next ping within three quarters. Only checks that fail for about a
// whole period get the daemon restarted. (Asking every half period, with
// a check that could take longer than the other half, let one slow
// answer cost a restart.)
func (n *Notifier) RunWatchdog(ctx context.Context, healthy func(context.Context) bool) error {
	half, err := n.WatchdogInterval()
	if err != nil {
		return err
	}
	if half <= 0 {
		<-ctx.Done()
		return nil
	}
	tick := half / 2
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if healthy != nil {
				cctx, cancel := context.WithTimeout(ctx, tick)
				ok := healthy(cctx)
				cancel()
				if !ok {
					continue
				}
			}
			if err := n.notify(daemon.SdNotifyWatchdog); err != nil {
				return err
			}
		}
	}
}
