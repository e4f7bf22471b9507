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
	"path/filepath"
	"sync"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
	"github.com/haguard/haguard/validate"
)

// Host is one managed haproxy: what its unit runs (Discovery), haguard.yaml
// reconciled with it, systemd and the master CLI.
type Host struct {
	cfg  config.Config
	disc Discovery
	// sd is nil when systemd could not be reached; sdErr then says why.
	sd    *systemd.Client
	sdErr error
	// mc is nil when haproxy runs without a master CLI (no -S).
	mc  *master.Client
	log *slog.Logger
	// targets caches what each haproxy binary is (its version and
	// presets), probed once per binary.
	targets *validate.Targets

	// unit is what systemd said at Open; the first unit read after it
	// takes it instead of asking again (discovery then costs no extra
	// D-Bus round trip: see freshUnit).
	mu     sync.Mutex
	unit   systemd.Unit
	unitAt time.Time
}

// unitFresh is how long the unit read at Open may stand in for a read.
const unitFresh = 250 * time.Millisecond

// freshUnit hands out the unit read at Open, once, when it is that unit
// and recent: status and the reload's baseline start right after Open.
func (h *Host) freshUnit(name string) (systemd.Unit, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u, at := h.unit, h.unitAt
	h.unitAt = time.Time{}
	return u, u.Name == name && !at.IsZero() && time.Since(at) < unitFresh
}

// Open discovers what cfg's unit runs, over an open systemd connection
// (which it does not own), and returns the host with haguard.yaml
// reconciled against it: haguard.yaml fills what the unit does not say,
// and must not contradict what it does (a *ConflictError, exit 2 for the
// commands).
func Open(ctx context.Context, cfg config.Config, sd *systemd.Client, log *slog.Logger) (*Host, error) {
	u, err := sd.Unit(ctx, cfg.Systemd.Unit)
	if err != nil {
		u = systemd.Unit{Name: cfg.Systemd.Unit}
	}
	h, cerr := newHost(cfg, Discover(u), log)
	h.sd = sd
	if err != nil {
		h.disc.Notes = append(h.disc.Notes, fmt.Sprintf("systemd: %v", err))
	} else {
		h.unit, h.unitAt = u, time.Now()
	}
	return h, cerr
}

// OpenWithoutSystemd is Open when systemd cannot be reached (err says
// why): haguard.yaml, else Debian's defaults, say what runs; the sweep
// classifies by the master CLI only.
func OpenWithoutSystemd(cfg config.Config, err error, log *slog.Logger) (*Host, error) {
	h, cerr := newHost(cfg, Discover(systemd.Unit{Name: cfg.Systemd.Unit}), log)
	h.sdErr = err
	h.disc.Notes = append(h.disc.Notes, fmt.Sprintf("systemd: %v", err))
	return h, cerr
}

func newHost(cfg config.Config, d Discovery, log *slog.Logger) (*Host, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hp, err := d.Reconcile(cfg.HAProxy)
	cfg.HAProxy = hp
	// The probe of the binary (haproxy -vv and a probe config, two
	// haproxy starts) is kept in the state dir, so that each command does
	// not pay for it again; it is probed anew after an upgrade.
	targets := &validate.Targets{File: filepath.Join(cfg.StateDir, targetCacheFile)}
	h := &Host{cfg: cfg, disc: d, log: log, targets: targets}
	if hp.MasterSocket != "" {
		h.mc = master.New(hp.MasterSocket)
	}
	return h, err
}

// targetCacheFile is the probe cache's name in the state dir.
const targetCacheFile = "haproxy-target.json"

// Config is haguard.yaml with the haproxy block as discovered (and
// reconciled): the effective settings.
func (h *Host) Config() config.Config { return h.cfg }

// Discovery is what the unit runs, and where each fact came from.
func (h *Host) Discovery() Discovery { return h.disc }

// Master is the master CLI client; nil without -S.
func (h *Host) Master() *master.Client { return h.mc }

// Target is what the unit's haproxy binary is (its version and build),
// asked once per binary.
func (h *Host) Target(ctx context.Context) (*validate.Target, error) {
	return h.targets.Get(ctx, h.cfg.HAProxy.Binary)
}

// Reloader builds the reload transaction over this host.
func (h *Host) Reloader() (*reload.Reloader, error) {
	return h.reloader(unitPort{h})
}

// ReloaderInJob builds the transaction that runs inside the unit's own
// reload job (haguard exec-reload, reload.Options.InReloadJob): it
// reloads by signalling the master, since asking systemd would queue a
// job behind the one running it; and it never waits for the lock.
func (h *Host) ReloaderInJob() (*reload.Reloader, error) {
	h.cfg.Reload.Lock = "fail"
	return h.reloader(usr2Port{h})
}

func (h *Host) reloader(rl interface {
	Reload(ctx context.Context, unit string) error
}) (*reload.Reloader, error) {
	if h.sd == nil {
		return nil, fmt.Errorf("connect to systemd: %w", h.sdErr)
	}
	c := h.cfg
	var gens interface {
		ShowProc(context.Context) (reload.Generation, error)
	} = procGenerations{sd: h.sd, unit: c.Systemd.Unit, now: time.Now}
	if h.mc != nil {
		gens = masterPort{h.mc}
	}
	return reload.New(reload.Settings{
		StateDir:      c.StateDir,
		Unit:          c.Systemd.Unit,
		Files:         c.HAProxy.Configs,
		SettleTimeout: c.Reload.SettleTimeout.D(),
		LockWait:      c.Reload.Lock == "wait",
		LockTimeout:   c.Reload.LockTimeout.D(),
		HistoryKeep:   c.Reload.HistoryKeep,
		Probe:         c.Reload.ProbeOnStart,
		Backends:      c.Reload.Backends,
		MinInterval:   c.Reload.MinInterval.D(),
	}, reload.Deps{
		Checker: checkPort{h},
		Reload:  rl,
		Unit:    unitPort{h},
		Master:  gens,
		Sweeper: &sweepPort{scan: h.Scanner(), killer: procs.NewKiller(c.Reload.KillGrace.D(), h.log)},
		Prober:  probePort{h},
		Logs:    logsPort{mc: h.mc, unit: c.Systemd.Unit},
		Differ:  diffPort{h},
		Signals: signalPort{},
		Watcher: watchPort{h},
		State:   h.stateKeeper(),
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
	s := &procs.Scanner{
		Unit:    h.cfg.Systemd.Unit,
		Names:   h.cfg.HAProxy.ProcessNames,
		Settle:  h.cfg.Sweep.Settle.D(),
		Systemd: units,
		Logger:  h.log,
	}
	if h.mc != nil { // a nil *master.Client is not a missing one
		s.Master = h.mc
	}
	return s
}

// unreachable stands in for systemd when the bus cannot be reached, so
// the sweep reports the real cause.
type unreachable struct{ err error }

func (u unreachable) State(context.Context, string) (systemd.Unit, error) {
	return systemd.Unit{}, u.err
}
