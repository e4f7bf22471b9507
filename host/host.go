// Package host assembles haguard's view of one haproxy host from
// haguard.yaml: the unit over systemd, the master CLI, the process sweep,
// the check and the probes, as the pieces that the reload transaction, the
// daemon and the commands need. It is the wiring that cmd/haguard and
// daemon share; the policy lives in the packages it assembles (validate,
// agent/procs, agent/probe, reload).
package host

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
)

// Host is one managed haproxy: haguard.yaml, systemd and the master CLI.
type Host struct {
	cfg config.Config
	// sd is nil when systemd could not be reached; sdErr then says why.
	sd    *systemd.Client
	sdErr error
	mc    *master.Client
	log   *slog.Logger
}

// New returns the host that cfg describes, over an open systemd
// connection, which it does not own.
func New(cfg config.Config, sd *systemd.Client, log *slog.Logger) *Host {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Host{cfg: cfg, sd: sd, mc: master.New(cfg.HAProxy.MasterSocket), log: log}
}

// WithoutSystemd returns the host when systemd cannot be reached: the
// sweep then classifies by the master CLI only, and says why.
func WithoutSystemd(cfg config.Config, err error, log *slog.Logger) *Host {
	h := New(cfg, nil, log)
	h.sdErr = err
	return h
}

// Config is the haguard.yaml the host was built from.
func (h *Host) Config() config.Config { return h.cfg }

// Master is the master CLI client.
func (h *Host) Master() *master.Client { return h.mc }

// Reloader builds the reload transaction over this host.
func (h *Host) Reloader() (*reload.Reloader, error) {
	if h.sd == nil {
		return nil, fmt.Errorf("connect to systemd: %w", h.sdErr)
	}
	c := h.cfg
	return reload.New(reload.Settings{
		StateDir:      c.StateDir,
		Unit:          c.Systemd.Unit,
		Files:         c.HAProxy.Configs,
		SettleTimeout: c.Reload.SettleTimeout.D(),
		LockWait:      c.Reload.Lock == "wait",
		LockTimeout:   c.Reload.LockTimeout.D(),
		HistoryKeep:   c.Reload.HistoryKeep,
		Probe:         c.Reload.ProbeOnStart,
	}, reload.Deps{
		Checker: checkPort{h},
		Reload:  unitPort{h.sd},
		Unit:    unitPort{h.sd},
		Master:  masterPort{h.mc},
		Sweeper: &sweepPort{scan: h.Scanner(), killer: procs.NewKiller(c.Reload.KillGrace.D(), h.log)},
		Prober:  probePort{h},
		Logs:    logsPort{mc: h.mc, unit: c.Systemd.Unit},
		Pause:   testPause(h.log),
		Logger:  h.log,
	})
}

// Scanner is the process sweep that `haguard ghosts`, the reload and the
// daemon share.
func (h *Host) Scanner() *procs.Scanner {
	var units procs.UnitSource = unreachable{h.sdErr}
	if h.sd != nil {
		units = h.sd
	}
	return &procs.Scanner{
		Unit:    h.cfg.Systemd.Unit,
		Names:   h.cfg.HAProxy.ProcessNames,
		Settle:  h.cfg.Sweep.Settle.D(),
		Systemd: units,
		Master:  h.mc,
		Logger:  h.log,
	}
}

// unreachable stands in for systemd when the bus cannot be reached, so
// the sweep reports the real cause.
type unreachable struct{ err error }

func (u unreachable) Unit(context.Context, string) (systemd.Unit, error) {
	return systemd.Unit{}, u.err
}
