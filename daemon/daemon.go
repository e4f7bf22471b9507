// Package daemon is `haguard serve`: the REST API (package api) over the
// reload transaction, the periodic ghost sweep, the Prometheus metrics
// (counting command-line transactions from the audit log), SIGHUP to
// re-read haguard.yaml, and the systemd notify protocol. cmd/haguard
// parses the flags, opens the listener and the bus, and runs a Daemon.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/systemd"
)

// Options are what the command hands the daemon.
type Options struct {
	// Load re-reads haguard.yaml (with the command's overrides) on SIGHUP.
	Load func() (config.Config, error)
	// Listener is where the API serves (api.Listen); the daemon does not
	// close it.
	Listener net.Listener
	// MetricsListener, when set, serves /metrics alone (api.metrics_listen)
	// with WebConfig's TLS and basic auth (nil: neither); the daemon does
	// not close it.
	MetricsListener net.Listener
	WebConfig       *api.WebConfig
	// Systemd is the bus connection for the daemon's lifetime; it must
	// outlive the run's context (a reload running at SIGTERM still needs
	// it) and is not closed here.
	Systemd *systemd.Client
	// Tokens are the bearer tokens (api.LoadTokens).
	Tokens  []api.Token
	Logger  *slog.Logger
	Version string
}

// Daemon is one `haguard serve`.
type Daemon struct {
	o      Options
	cfg    config.Config
	log    *slog.Logger
	units  []*watched
	srv    *api.Server
	notify *systemd.Notifier
}

// watched is one unit the daemon watches (systemd.units): its pieces,
// swapped on SIGHUP, its sweep loop, its metrics (labelled with the unit),
// and the lint of its running config. Each has its own state dir
// (config.ForUnit), so its own lock, history and audit log.
type watched struct {
	name    string
	log     *slog.Logger
	cur     atomic.Pointer[pieces]
	sweeps  *sweeps
	metrics *api.Metrics
	lint    *runningLint
	ad      apiAdapter
}

// New builds the daemon for cfg, discovering what each of its units runs.
// Its errors are haguard.yaml's (a *host.ConflictError among them).
func New(ctx context.Context, cfg config.Config, o Options) (*Daemon, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{o: o, cfg: cfg, log: log, notify: systemd.NewNotifier()}
	names, err := unitsOf(ctx, cfg, o.Systemd)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		w, err := d.watch(ctx, config.ForUnit(cfg, name))
		if err != nil {
			if len(names) > 1 {
				err = fmt.Errorf("%s: %w", name, err)
			}
			return nil, err
		}
		d.units = append(d.units, w)
	}
	opts := api.Options{
		Tokens: o.Tokens, Logger: log.With("component", "api"),
		UnitBackend:  d.units[0].backend(),
		MaxBodyBytes: cfg.API.MaxBodyBytes, ReadTimeout: cfg.API.ReadTimeout.D(),
		WriteTimeout: cfg.API.WriteTimeout.D(), IdleTimeout: cfg.API.IdleTimeout.D(),
		Version:      o.Version,
		MergeReloads: func() bool { return d.units[0].cur.Load().cfg().Reload.MinInterval > 0 },
	}
	for _, w := range d.units[1:] {
		opts.More = append(opts.More, w.backend())
	}
	for _, w := range d.units {
		cleanScratch(w.cur.Load().cfg().StateDir, w.log)
	}
	if d.srv, err = api.New(opts); err != nil {
		return nil, err
	}
	return d, nil
}

// backend is what the API serves for w: the adapters over its current
// pieces, its sweep, metrics and job ledger.
func (w *watched) backend() api.UnitBackend {
	return api.UnitBackend{Unit: w.name, Metrics: w.metrics, JobDir: w.jobDir(),
		Checker: w.ad, Reloader: w.ad, Hasher: w.ad, Ghosts: w.sweeps, Prober: w.ad, Status: w.ad, Runtime: w.ad}
}

// unitsOf expands systemd.units (names and globs) with systemd; without
// it, the daemon watches systemd.unit alone.
func unitsOf(ctx context.Context, cfg config.Config, sd *systemd.Client) ([]string, error) {
	if len(cfg.Systemd.Units) == 0 {
		return []string{cfg.Systemd.Unit}, nil
	}
	names, err := sd.Units(ctx, cfg.Systemd.Units)
	if err != nil {
		return nil, fmt.Errorf("systemd.units: %w", err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("systemd.units: no loaded unit matches %s", strings.Join(cfg.Systemd.Units, ", "))
	}
	return names, nil
}

// jobDir is the unit's job ledger: <state_dir>/jobs of its own state dir.
func (w *watched) jobDir() string { return filepath.Join(w.cur.Load().cfg().StateDir, "jobs") }

// watch opens cfg's unit and builds what the daemon keeps for it.
func (d *Daemon) watch(ctx context.Context, cfg config.Config) (*watched, error) {
	w := &watched{name: cfg.Systemd.Unit, log: d.log.With("unit", cfg.Systemd.Unit), metrics: api.NewMetrics()}
	w.metrics.SetUnit(w.name)
	w.lint = newRunningLint(w.metrics, w.log, checkRunning(w.cur.Load))
	w.ad = apiAdapter{cur: &w.cur, log: w.log}
	w.sweeps = newSweeps(w.metrics, w.log, w.ad.RunningSHA256)
	w.ad.afterReload = w.sweeps.Trigger
	h, err := host.Open(ctx, cfg, d.o.Systemd, w.log)
	if err != nil {
		return nil, err
	}
	p, err := buildPieces(h, w.sweeps)
	if err != nil {
		return nil, err
	}
	w.cur.Store(p)
	w.sweeps.set(p.sweeper)
	w.sweeps.onConfig = w.lint.follow
	w.sweeps.afterSweep = newLedger(w.metrics, w.log, func() string { return w.cur.Load().cfg().StateDir }).read
	return w, nil
}

// Run serves until ctx ends. A reload that runs at that moment finishes
// or rolls back first.
func (d *Daemon) Run(ctx context.Context) error {
	cfg, log := d.cfg, d.log
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The watchdog outlives ctx: it keeps pinging while a running reload
	// finishes during shutdown, and stops once Serve has returned.
	wdCtx, wdStop := context.WithCancel(context.WithoutCancel(ctx))
	defer wdStop()
	wdDone := make(chan error, 1)
	go func() { wdDone <- d.notify.RunWatchdog(wdCtx, selfCheck(cfg.API.Listen, d.o.Listener.Addr())) }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer wdStop()
		return d.srv.Serve(gctx, d.o.Listener)
	})
	for _, w := range d.units {
		g.Go(func() error { return w.sweeps.Run(gctx) })
	}
	for _, w := range d.units {
		g.Go(func() error {
			// A confirmation window a run before this one left open.
			msg, err := w.cur.Load().rel.ResumeWindow(gctx)
			switch {
			case err != nil:
				w.log.Error("confirmation window left open: not resumed", "err", err)
			case msg != "":
				w.log.Warn("confirmation window resumed", "what", msg)
				w.sweeps.Trigger()
			}
			return nil
		})
	}
	if d.o.MetricsListener != nil {
		g.Go(func() error { return d.srv.ServeMetrics(gctx, d.o.MetricsListener, d.o.WebConfig) })
		log.Info("metrics listening", "addr", d.o.MetricsListener.Addr().String(), "tls", d.o.WebConfig.TLSEnabled(),
			"basic_auth", d.o.WebConfig != nil && len(d.o.WebConfig.Users) > 0)
	}
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				d.reloadSelf()
			}
		}
	})
	log.Info("haguard serve listening", "listen", cfg.API.Listen, "addr", d.o.Listener.Addr().String(),
		"units", d.unitNames(), "sweep_interval", cfg.Sweep.Interval.D(), "kill_ghosts", cfg.Sweep.KillGhosts)
	notifyLog(log, "ready", d.notify.Ready())
	notifyLog(log, "status", d.notify.Status("API listening on "+cfg.API.Listen))
	go func() {
		<-gctx.Done()
		notifyLog(log, "stopping", d.notify.Stopping())
	}()
	err := g.Wait()
	wdStop()
	<-wdDone
	if err != nil {
		return err
	}
	log.Info("haguard serve stopped")
	return nil
}

// reloadSelf is SIGHUP: re-read haguard.yaml and the token file and swap
// in new pieces for every watched unit. A bad file keeps the running set.
// A running reload keeps the pieces it started with. The listen address,
// the D-Bus address and the list of units need a restart.
func (d *Daemon) reloadSelf() {
	log := d.log
	notifyLog(log, "reloading", d.notify.Reloading())
	defer func() { notifyLog(log, "ready", d.notify.Ready()) }()
	cfg, err := d.o.Load()
	if err != nil {
		log.Error("SIGHUP: haguard.yaml not reloaded, keeping the running settings", "err", err)
		return
	}
	old := d.cfg
	for _, c := range []struct{ name, was, is string }{
		{"api.listen", old.API.Listen, cfg.API.Listen},
		{"systemd.bus_address", old.Systemd.BusAddress, cfg.Systemd.BusAddress},
		{"systemd.unit", old.Systemd.Unit, cfg.Systemd.Unit},
		{"systemd.units", strings.Join(old.Systemd.Units, " "), strings.Join(cfg.Systemd.Units, " ")},
	} {
		if c.was != c.is {
			log.Warn("SIGHUP: this setting changes only on restart", "setting", c.name, "running", c.was, "file", c.is)
		}
	}
	cfg.API.Listen, cfg.Systemd.BusAddress = old.API.Listen, old.Systemd.BusAddress
	cfg.Systemd.Unit, cfg.Systemd.Units = old.Systemd.Unit, old.Systemd.Units
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Build every unit's pieces first: one unit that fails keeps them all
	// on the running settings, so the units never run on two files.
	next := make([]*pieces, len(d.units))
	for i, w := range d.units {
		h, err := host.Open(ctx, config.ForUnit(cfg, w.name), d.o.Systemd, w.log)
		if err == nil {
			next[i], err = buildPieces(h, w.sweeps)
		}
		if err != nil {
			w.log.Error("SIGHUP: haguard.yaml not applied, keeping the running settings", "err", err)
			return
		}
	}
	if toks, err := api.LoadTokens(cfg.API.TokenFile); err != nil {
		log.Error("SIGHUP: token file not reloaded, keeping the running token", "err", err)
	} else if err := d.srv.SetTokens(toks); err != nil {
		log.Error("SIGHUP: token not set", "err", err)
	}
	for i, w := range d.units {
		w.cur.Store(next[i])
		w.lint.reset()                // the new settings may lint differently
		w.sweeps.set(next[i].sweeper) // the new Sweeper sweeps at once
	}
	d.cfg = cfg
	log.Info("SIGHUP: haguard.yaml reloaded", "units", d.unitNames(), "sweep_interval", cfg.Sweep.Interval.D())
}

func (d *Daemon) unitNames() []string {
	names := make([]string, len(d.units))
	for i, w := range d.units {
		names[i] = w.name
	}
	return names
}

// selfCheck is the watchdog's health test: the API answers /v1/healthz on
// its own listener before ctx ends (RunWatchdog bounds it to its tick). A
// stuck daemon stops pinging and systemd restarts it.
func selfCheck(listen string, addr net.Addr) func(context.Context) bool {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		if path, ok := strings.CutPrefix(listen, "unix:"); ok {
			return d.DialContext(ctx, "unix", path)
		}
		return d.DialContext(ctx, "tcp", addr.String())
	}
	c := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	return func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://haguard/v1/healthz", nil)
		if err != nil {
			return false
		}
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

func notifyLog(log *slog.Logger, what string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("sd_notify", "what", what, "err", err)
	}
}
