package cli

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/daemon"
	"github.com/haguard/haguard/systemd"
)

// serveFlags are serve's overrides of haguard.yaml's api block.
type serveFlags struct {
	listen, tokenFile string
	units             []string
}

func (f serveFlags) apply(cfg *config.Config) {
	if len(f.units) > 0 {
		cfg.Systemd.Units = f.units
	}
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

Several haproxy units (systemd.units in haguard.yaml, or --unit repeated or
given a glob such as 'haproxy@*.service'): each has its own reload queue,
sweep, state dir and metrics series (label unit); API requests name theirs
with ?unit=. The list is expanded at start; a new instance needs a restart.

systemd: READY=1 once the API listens; SIGHUP re-reads haguard.yaml and the
token file (RELOADING=1 ... READY=1); WATCHDOG=1 at half of WatchdogSec while
the API answers; on SIGTERM a running reload finishes or rolls back first.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&f.listen, "listen", "", "host:port on loopback, or unix:/path (default: api.listen, 127.0.0.1:9180)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token, mode 0600 (default: api.token_file)")
	listVarP(cmd.Flags(), &f.units, "unit", "", false, "a unit to watch; repeat it, or give a glob (haproxy@*.service), for several (default: systemd.units, else systemd.unit)")
	cmd.RunE = a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
		f.apply(&cfg)
		return a.serve(ctx, cmd, cfg, f)
	})
	return cmd
}

// metricsListener opens api.metrics_listen with its web config (nil, nil
// when it is not set).
func metricsListener(cfg config.Config) (net.Listener, *api.WebConfig, error) {
	if cfg.API.MetricsListen == "" {
		return nil, nil, nil
	}
	var wc *api.WebConfig
	if cfg.API.MetricsWebConfig != "" {
		var err error
		if wc, err = api.LoadWebConfig(cfg.API.MetricsWebConfig); err != nil {
			return nil, nil, fmt.Errorf("api.metrics_web_config: %w", err)
		}
	}
	ln, err := api.ListenMetrics(cfg.API.MetricsListen)
	if err != nil {
		return nil, nil, err
	}
	return ln, wc, nil
}

// serve builds the daemon and runs it until ctx ends.
func (a *app) serve(ctx context.Context, cmd *cobra.Command, cfg config.Config, f serveFlags) (int, error) {
	log := a.logger()
	tokens, err := api.LoadTokens(cfg.API.TokenFile)
	if err != nil {
		return exitUsage, usagef(fmt.Errorf("refusing to start: %w", err))
	}
	// Listen first: a bad address is a usage error whatever the host's
	// state. Connections wait in the backlog until the daemon serves.
	ln, err := api.Listen(cfg.API.Listen)
	if err != nil {
		return exitUsage, usagef(err)
	}
	defer ln.Close()
	mln, wc, err := metricsListener(cfg)
	if err != nil {
		return exitUsage, usagef(err)
	}
	if mln != nil {
		defer mln.Close()
	}
	// The D-Bus connection must outlive ctx: go-systemd closes a
	// connection when its dial context ends, and a reload still running
	// at SIGTERM needs it to settle or roll back. It is closed on return.
	sd, err := systemd.Dial(context.WithoutCancel(ctx), cfg.Systemd.BusAddress)
	if err != nil {
		return exitBroken, fmt.Errorf("connect to systemd: %w", err)
	}
	defer sd.Close()
	load := func() (config.Config, error) {
		c, err := a.loadConfig(cmd)
		f.apply(&c)
		return c, err
	}
	d, err := daemon.New(ctx, cfg, daemon.Options{Load: load, Listener: ln, MetricsListener: mln, WebConfig: wc, Systemd: sd, Tokens: tokens, Logger: log, Version: a.version})
	if err != nil {
		return exitUsage, usagef(err)
	}
	if err := d.Run(ctx); err != nil {
		return exitBroken, err
	}
	return exitOK, nil
}
