package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/probe"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
	"github.com/haguard/haguard/validate"
)

// Wiring for reload, rollback, history and status: the concrete systemd,
// master CLI, validate, probe and procs values, adapted to the small
// interfaces reload declares.

// unitFlags are the per-command overrides of haguard.yaml's systemd block.
type unitFlags struct {
	unit, busAddress string
}

// buildReloader dials systemd and builds a Reloader. close releases the
// D-Bus connection.
func (a *app) buildReloader(ctx context.Context, cfg config.Config, uf unitFlags, log *slog.Logger) (*reload.Reloader, func(), error) {
	if uf.unit != "" {
		cfg.Systemd.Unit = uf.unit
	}
	if uf.busAddress != "" {
		cfg.Systemd.BusAddress = uf.busAddress
	}
	// The connection outlives ctx: godbus closes a connection when its dial
	// context ends, and a Ctrl-C during the transaction must not cut the bus
	// under the rollback that the cancellation itself triggers.
	sd, err := systemd.Dial(context.WithoutCancel(ctx), cfg.Systemd.BusAddress)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to systemd: %w", err)
	}
	rp, err := newReloader(cfg, sd, log)
	if err != nil {
		sd.Close()
		return nil, nil, err
	}
	return rp.rel, sd.Close, nil
}

// reloadParts are a Reloader and the concrete values it was built over,
// for callers (serve) that use them beside it.
type reloadParts struct {
	rel     *reload.Reloader
	mc      *master.Client
	checker *checkAdapter
	prober  *probeAdapter
}

// newReloader builds a Reloader for cfg over an existing D-Bus connection,
// which it does not own: `haguard reload` dials one per run (buildReloader),
// the daemon keeps one for its lifetime and calls this again on SIGHUP.
func newReloader(cfg config.Config, sd *systemd.Client, log *slog.Logger) (reloadParts, error) {
	mc := master.New(cfg.HAProxy.MasterSocket)
	p := reloadParts{mc: mc, checker: &checkAdapter{cfg: cfg, log: log}, prober: &probeAdapter{cfg: cfg, log: log}}
	rel, err := reload.New(reload.Settings{
		StateDir:      cfg.StateDir,
		Unit:          cfg.Systemd.Unit,
		Files:         cfg.HAProxy.Configs,
		SettleTimeout: cfg.Reload.SettleTimeout.D(),
		LockWait:      cfg.Reload.Lock == "wait",
		LockTimeout:   cfg.Reload.LockTimeout.D(),
		HistoryKeep:   cfg.Reload.HistoryKeep,
		Probe:         cfg.Reload.ProbeOnStart,
	}, reload.Deps{
		Checker: p.checker,
		Reload:  unitAdapter{sd},
		Unit:    unitAdapter{sd},
		Master:  masterAdapter{mc},
		Sweeper: newSweepAdapter(cfg, sd, mc, log),
		Prober:  p.prober,
		Logs:    logsAdapter{mc: mc, unit: cfg.Systemd.Unit},
		Pause:   testPause(log),
		Logger:  log,
	})
	if err != nil {
		return reloadParts{}, err
	}
	p.rel = rel
	return p, nil
}

// testPause is the hidden hook the crash tests use:
// HAGUARD_TEST_PAUSE_AT=settle sleeps HAGUARD_TEST_PAUSE_FOR (default 60s)
// once that stage is journaled, so a test can SIGKILL the run there.
func testPause(log *slog.Logger) func(context.Context, string) {
	at := os.Getenv("HAGUARD_TEST_PAUSE_AT")
	if at == "" {
		return nil
	}
	d := time.Minute
	if v, err := time.ParseDuration(os.Getenv("HAGUARD_TEST_PAUSE_FOR")); err == nil {
		d = v
	}
	return func(ctx context.Context, stage string) {
		if stage != at {
			return
		}
		log.Warn("test hook: pausing", "stage", stage, "for", d)
		fmt.Fprintf(os.Stderr, "HAGUARD_TEST_PAUSED %s\n", stage)
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
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

type checkAdapter struct {
	cfg config.Config
	log *slog.Logger
}

func (c *checkAdapter) Check(ctx context.Context, files []string) (reload.CheckReport, error) {
	rep, err := checkConfig(ctx, c.cfg, c.cfg.Facts.Mode, validate.Options{Files: files, HAProxyBin: c.cfg.HAProxy.Binary, Logger: c.log})
	if err != nil {
		return reload.CheckReport{}, err
	}
	out := reload.CheckReport{Valid: rep.Syntax.OK, Output: rep.Syntax.Output, Findings: make([]reload.Finding, 0, len(rep.Findings))}
	for _, f := range rep.Findings {
		out.Findings = append(out.Findings, reload.Finding{Rule: f.Rule, Severity: string(f.Severity), Message: f.Message,
			Fix: f.Fix, File: f.File, Line: f.Line, Section: f.Section})
	}
	return out, nil
}

type unitAdapter struct{ c *systemd.Client }

func (u unitAdapter) Reload(ctx context.Context, unit string) error { return u.c.Reload(ctx, unit) }

func (u unitAdapter) UnitState(ctx context.Context, unit string) (reload.UnitState, error) {
	s, err := u.c.Unit(ctx, unit)
	if err != nil {
		return reload.UnitState{}, err
	}
	return reload.UnitState{ActiveState: s.ActiveState, SubState: s.SubState, StatusText: s.StatusText, MainPID: int(s.MainPID)}, nil
}

type masterAdapter struct{ c *master.Client }

func (m masterAdapter) ShowProc(ctx context.Context) (reload.Generation, error) {
	sp, err := m.c.ShowProc(ctx)
	if err != nil {
		return reload.Generation{}, err
	}
	g := reload.Generation{MasterPID: int(sp.Master.PID), Reloads: sp.Reloads, Failed: sp.FailedReloads}
	for _, w := range sp.Workers {
		g.Workers = append(g.Workers, reload.Worker{PID: int(w.PID), Reloads: w.Reloads, Uptime: w.Uptime})
	}
	for _, w := range sp.OldWorkers {
		g.OldWorkers = append(g.OldWorkers, reload.Worker{PID: int(w.PID), Reloads: w.Reloads, Uptime: w.Uptime})
	}
	return g, nil
}

// logsAdapter returns `show startup-logs` (2.7+), else the unit's journal.
type logsAdapter struct {
	mc   *master.Client
	unit string
}

func (l logsAdapter) StartupLogs(ctx context.Context) (string, error) {
	s, err := l.mc.StartupLogs(ctx)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, master.ErrUnsupported) {
		return "", err
	}
	out, jerr := exec.CommandContext(ctx, "journalctl", "--no-pager", "-o", "cat", "-n", "8", "-u", l.unit).Output()
	if jerr != nil {
		return "", fmt.Errorf("journalctl: %w", jerr)
	}
	return string(out), nil
}

// probeAdapter probes the targets of haguard.yaml, or else every bind of
// the config on disk at probe time (after install that is the candidate).
type probeAdapter struct {
	cfg config.Config
	log *slog.Logger
}

func (p *probeAdapter) Probe(ctx context.Context) (reload.ProbeReport, error) {
	targets, err := p.targets()
	if err != nil {
		return reload.ProbeReport{}, err
	}
	opts := probe.Options{Count: p.cfg.Probe.Count, Concurrency: p.cfg.Probe.Concurrency,
		Timeout: p.cfg.Probe.Timeout.D(), Logger: p.log}
	if opts.Count == 0 {
		// The default count scales with the listeners (ghosts included).
		if socks, err := probe.ListenSockets(ctx); err == nil {
			opts.ListenerCount = probe.ListenerCounter(socks)
		}
	}
	rep := probe.Run(ctx, targets, opts)
	out := reload.ProbeReport{Attempts: []reload.ProbeAttempt{}}
	for _, t := range rep.Targets {
		for _, a := range t.Attempts {
			out.Total++
			if a.OK {
				out.OK++
			} else {
				out.Failed++
			}
			out.Attempts = append(out.Attempts, reload.ProbeAttempt{Target: a.Target, Kind: a.Kind, OK: a.OK, Error: a.Error, LatencyMS: a.LatencyMS})
		}
	}
	if p.cfg.HAProxy.StatsSocket != "" {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		h, err := probe.ReadStats(sctx, p.cfg.HAProxy.StatsSocket)
		cancel()
		if err == nil {
			for _, s := range h.Servers {
				out.Servers = append(out.Servers, reload.ServerHealth{Backend: s.Backend, Server: s.Server, Status: s.Status, Check: s.CheckStatus})
			}
		}
	}
	return out, nil
}

func (p *probeAdapter) targets() ([]probe.Target, error) {
	ts := ConfiguredTargets(p.cfg)
	if len(ts) == 0 {
		vc, err := validate.Parse(p.cfg.HAProxy.Configs...)
		if err != nil {
			return nil, fmt.Errorf("read listeners: %w", err)
		}
		ts = probe.InferTargets(ProbeListeners(vc), "")
	}
	user, pass := p.cfg.Probe.MySQL.User, p.cfg.Probe.MySQL.Password
	if f := p.cfg.Probe.MySQL.PasswordFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("probe.mysql.password_file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	for i := range ts {
		ts[i].User, ts[i].Password = user, pass
	}
	return ts, nil
}
