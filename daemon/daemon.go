// Package daemon is `haguard serve`: the REST API (package api) over the
// reload transaction, the periodic ghost sweep, the Prometheus metrics
// (counting command-line transactions from the audit log), SIGHUP to
// re-read haguard.yaml, and the systemd notify protocol. cmd/haguard
// parses the flags, opens the listener and the bus, and runs a Daemon.
package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
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
	// Systemd is the bus connection for the daemon's lifetime; it must
	// outlive the run's context (a reload running at SIGTERM still needs
	// it) and is not closed here.
	Systemd *systemd.Client
	// Token is the bearer token (api.LoadToken).
	Token   []byte
	Logger  *slog.Logger
	Version string
}

// Daemon is one `haguard serve`.
type Daemon struct {
	o       Options
	cfg     config.Config
	log     *slog.Logger
	cur     atomic.Pointer[pieces]
	sweeps  *sweeps
	srv     *api.Server
	notify  *systemd.Notifier
	metrics *api.Metrics
	lint    *runningLint
}

// New builds the daemon for cfg, discovering what its unit runs. Its
// errors are haguard.yaml's (a *host.ConflictError among them).
func New(ctx context.Context, cfg config.Config, o Options) (*Daemon, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{o: o, cfg: cfg, log: log, notify: systemd.NewNotifier()}
	metrics := api.NewMetrics()
	d.metrics = metrics
	d.lint = newRunningLint(metrics, log, checkRunning(d.cur.Load))
	ad := apiAdapter{cur: &d.cur, log: log}
	d.sweeps = newSweeps(metrics, log, ad.RunningSHA256)
	ad.afterReload = d.sweeps.Trigger
	h, err := host.Open(ctx, cfg, o.Systemd, log)
	if err != nil {
		return nil, err
	}
	p, err := buildPieces(h, d.sweeps)
	if err != nil {
		return nil, err
	}
	d.cur.Store(p)
	d.sweeps.set(p.sweeper)
	d.sweeps.onConfig = d.lint.follow
	d.sweeps.afterSweep = newLedger(metrics, log, func() string { return d.cur.Load().cfg().StateDir }).read
	d.srv, err = api.New(api.Options{
		Token: o.Token, Logger: log.With("component", "api"), Metrics: metrics,
		Checker: ad, Reloader: ad, Hasher: ad, Ghosts: d.sweeps, Prober: ad, Status: ad, Runtime: ad,
		MaxBodyBytes: cfg.API.MaxBodyBytes, ReadTimeout: cfg.API.ReadTimeout.D(),
		WriteTimeout: cfg.API.WriteTimeout.D(), IdleTimeout: cfg.API.IdleTimeout.D(),
		Version: o.Version,
	})
	if err != nil {
		return nil, err
	}
	return d, nil
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
	g.Go(func() error { return d.sweeps.Run(gctx) })
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
		"unit", cfg.Systemd.Unit, "sweep_interval", cfg.Sweep.Interval.D(), "kill_ghosts", cfg.Sweep.KillGhosts)
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
// in new pieces. A bad file keeps the running set. A running reload keeps
// the pieces it started with. The listen address and the D-Bus address
// need a restart.
func (d *Daemon) reloadSelf() {
	log := d.log
	notifyLog(log, "reloading", d.notify.Reloading())
	defer func() { notifyLog(log, "ready", d.notify.Ready()) }()
	cfg, err := d.o.Load()
	if err != nil {
		log.Error("SIGHUP: haguard.yaml not reloaded, keeping the running settings", "err", err)
		return
	}
	old := d.cur.Load().cfg()
	for _, c := range []struct{ name, was, is string }{
		{"api.listen", old.API.Listen, cfg.API.Listen},
		{"systemd.bus_address", old.Systemd.BusAddress, cfg.Systemd.BusAddress},
	} {
		if c.was != c.is {
			log.Warn("SIGHUP: this setting changes only on restart", "setting", c.name, "running", c.was, "file", c.is)
		}
	}
	cfg.API.Listen, cfg.Systemd.BusAddress = old.API.Listen, old.Systemd.BusAddress
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := host.Open(ctx, cfg, d.o.Systemd, log)
	if err != nil {
		log.Error("SIGHUP: haguard.yaml not applied, keeping the running settings", "err", err)
		return
	}
	p, err := buildPieces(h, d.sweeps)
	if err != nil {
		log.Error("SIGHUP: haguard.yaml not applied, keeping the running settings", "err", err)
		return
	}
	if tok, err := api.LoadToken(cfg.API.TokenFile); err != nil {
		log.Error("SIGHUP: token file not reloaded, keeping the running token", "err", err)
	} else if err := d.srv.SetToken(tok); err != nil {
		log.Error("SIGHUP: token not set", "err", err)
	}
	d.cur.Store(p)
	d.lint.reset()          // the new settings may lint differently
	d.sweeps.set(p.sweeper) // the new Sweeper sweeps at once
	log.Info("SIGHUP: haguard.yaml reloaded", "unit", cfg.Systemd.Unit, "sweep_interval", cfg.Sweep.Interval.D())
}

// selfCheck is the watchdog's health test: the API answers /v1/healthz on
// its own listener within 2 s. A stuck daemon stops pinging and systemd
// restarts it.
func selfCheck(listen string, addr net.Addr) func() bool {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		if path, ok := strings.CutPrefix(listen, "unix:"); ok {
			return d.DialContext(ctx, "unix", path)
		}
		return d.DialContext(ctx, "tcp", addr.String())
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	return func() bool {
		resp, err := c.Get("http://haguard/v1/healthz")
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
