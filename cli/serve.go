package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/systemd"
)

// serveFlags are serve's overrides of haguard.yaml's api block.
type serveFlags struct {
	listen, tokenFile string
}

func (f serveFlags) apply(cfg *config.Config) {
	if f.listen != "" {
		cfg.API.Listen = f.listen
	}
	if f.tokenFile != "" {
		cfg.API.TokenFile = f.tokenFile
	}
}

func (a *app) serveCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: REST API, periodic ghost sweep, Prometheus metrics (systemd Type=notify)",
		Long: `serve runs haguard as a daemon (deploy/haguard.service):

  - a REST API (docs/api.md) on 127.0.0.1:9180 or a unix socket (mode 0600),
    every endpoint but /v1/healthz and /v1/openapi.json behind a bearer token
    read from --token-file, which must not be readable by group or others;
  - reloads queued one at a time and coalesced;
  - a ghost sweep every sweep.interval and on demand (sweep.kill_ghosts is
    off by default: ghosts are logged and counted, not killed);
  - Prometheus metrics at /metrics (docs/metrics.md).

systemd: READY=1 once the API listens; SIGHUP re-reads haguard.yaml and the
token file (RELOADING=1 ... READY=1); WATCHDOG=1 at half of WatchdogSec while
the API answers; on SIGTERM a running reload finishes or rolls back first.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&f.listen, "listen", "", "host:port on loopback, or unix:/path (default: api.listen, 127.0.0.1:9180)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token, mode 0600 (default: api.token_file)")
	cmd.RunE = a.exec(func(ctx context.Context) (int, error) {
		cfg, err := a.loadConfig(cmd)
		if err != nil {
			return exitUsage, err
		}
		f.apply(&cfg)
		return a.serve(ctx, cmd, cfg, f)
	})
	return cmd
}

// serve builds the daemon and runs it until ctx ends.
func (a *app) serve(ctx context.Context, cmd *cobra.Command, cfg config.Config, f serveFlags) (int, error) {
	log := a.logger()
	token, err := api.LoadToken(cfg.API.TokenFile)
	if err != nil {
		return exitUsage, usagef(fmt.Errorf("refusing to start: %w", err))
	}
	// Listen first: a bad address is a usage error whatever the host's
	// state. Connections wait in the backlog until Serve runs.
	ln, err := api.Listen(cfg.API.Listen)
	if err != nil {
		return exitUsage, usagef(err)
	}
	defer ln.Close()
	// The D-Bus connection must outlive ctx: go-systemd closes a
	// connection when its dial context ends, and a reload still running
	// at SIGTERM needs it to settle or roll back. It is closed on return.
	sd, err := systemd.Dial(context.WithoutCancel(ctx), cfg.Systemd.BusAddress)
	if err != nil {
		return exitBroken, fmt.Errorf("connect to systemd: %w", err)
	}
	defer sd.Close()
	reg := prometheus.NewRegistry()
	metrics, err := api.NewMetrics(reg)
	if err != nil {
		return exitBroken, err
	}
	var cur atomic.Pointer[pieces]
	ad := apiAdapter{cur: &cur, log: log}
	sweeps := newSweeps(metrics, log, ad.RunningSHA256)
	ad.afterReload = sweeps.Trigger
	p, err := buildPieces(cfg, sd, sweeps, log)
	if err != nil {
		return exitUsage, usagef(err)
	}
	cur.Store(p)
	sweeps.set(p.sweeper)
	sweeps.afterSweep = newLedger(metrics, log, func() string { return cur.Load().cfg.StateDir }).read
	srv, err := api.New(api.Options{
		Token: token, Logger: log.With("component", "api"), Registry: reg, Metrics: metrics,
		Checker: ad, Reloader: ad, Hasher: ad, Ghosts: sweeps, Prober: ad, Status: ad,
		MaxBodyBytes: cfg.API.MaxBodyBytes, ReadTimeout: cfg.API.ReadTimeout.D(),
		WriteTimeout: cfg.API.WriteTimeout.D(), IdleTimeout: cfg.API.IdleTimeout.D(),
		Version: version,
	})
	if err != nil {
		return exitBroken, err
	}

	notify := systemd.NewNotifier()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The watchdog outlives ctx: it keeps pinging while a running reload
	// finishes during shutdown, and stops once Serve has returned.
	wdCtx, wdStop := context.WithCancel(context.WithoutCancel(ctx))
	defer wdStop()
	wdDone := make(chan error, 1)
	go func() { wdDone <- notify.RunWatchdog(wdCtx, selfCheck(cfg.API.Listen, ln.Addr())) }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer wdStop()
		return srv.Serve(gctx, ln)
	})
	g.Go(func() error { return sweeps.Run(gctx) })
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				a.reloadSelf(cmd, f, &cur, srv, sweeps, notify, sd, log)
			}
		}
	})
	log.Info("haguard serve listening", "listen", cfg.API.Listen, "addr", ln.Addr().String(),
		"unit", cfg.Systemd.Unit, "sweep_interval", cfg.Sweep.Interval.D(), "kill_ghosts", cfg.Sweep.KillGhosts)
	notifyLog(log, "ready", notify.Ready())
	notifyLog(log, "status", notify.Status("API listening on "+cfg.API.Listen))
	go func() {
		<-gctx.Done()
		notifyLog(log, "stopping", notify.Stopping())
	}()
	err = g.Wait()
	wdStop()
	<-wdDone
	if err != nil {
		return exitBroken, err
	}
	log.Info("haguard serve stopped")
	return exitOK, nil
}

// reloadSelf is SIGHUP: re-read haguard.yaml and the token file and swap
// in new pieces. A bad file keeps the running set. A running reload keeps
// the pieces it started with. The listen address and the D-Bus address
// need a restart.
func (a *app) reloadSelf(cmd *cobra.Command, f serveFlags, cur *atomic.Pointer[pieces], srv *api.Server,
	sweeps *sweeps, notify *systemd.Notifier, sd *systemd.Client, log *slog.Logger) {
	notifyLog(log, "reloading", notify.Reloading())
	defer func() { notifyLog(log, "ready", notify.Ready()) }()
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		log.Error("SIGHUP: haguard.yaml not reloaded, keeping the running settings", "err", err)
		return
	}
	f.apply(&cfg)
	old := cur.Load().cfg
	for _, c := range []struct{ name, was, is string }{
		{"api.listen", old.API.Listen, cfg.API.Listen},
		{"systemd.bus_address", old.Systemd.BusAddress, cfg.Systemd.BusAddress},
	} {
		if c.was != c.is {
			log.Warn("SIGHUP: this setting changes only on restart", "setting", c.name, "running", c.was, "file", c.is)
		}
	}
	cfg.API.Listen, cfg.Systemd.BusAddress = old.API.Listen, old.Systemd.BusAddress
	p, err := buildPieces(cfg, sd, sweeps, log)
	if err != nil {
		log.Error("SIGHUP: haguard.yaml not applied, keeping the running settings", "err", err)
		return
	}
	if tok, err := api.LoadToken(cfg.API.TokenFile); err != nil {
		log.Error("SIGHUP: token file not reloaded, keeping the running token", "err", err)
	} else if err := srv.SetToken(tok); err != nil {
		log.Error("SIGHUP: token not set", "err", err)
	}
	cur.Store(p)
	sweeps.set(p.sweeper) // the new Sweeper sweeps at once
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
