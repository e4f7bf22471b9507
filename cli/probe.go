package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/agent/probe"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/validate"
)

// probeFlags are the flags of `haguard probe`.
type probeFlags struct {
	targets      []string
	kind         string
	over         string
	count        int
	idle         time.Duration
	concurrency  int
	timeout      time.Duration
	haproxyCfgs  []string
	statsSocket  string
	user         string
	passwordFile string
	send, expect string
	linger       time.Duration
	path         string
	expectStatus int
	expectBody   string
}

func (a *app) probeCmd() *cobra.Command {
	var f probeFlags
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Run synthetic connections through haproxy's listeners and read server health",
		Long: `probe connects through every haproxy listener (or the --target addresses)
the way a client would, N times each, and reports every attempt.

Kinds: tcp (connect, optional --send/--expect), mysql (the server's v10
handshake through haproxy; with --mysql-user a login, where "access denied"
1045 still counts as OK), http (status and body), idle-hold (hold a
connection idle for --idle, then use it: reports whether and when the path
closed it, and whether the server or the proxy did).

Targets: --target, else probe.targets in haguard.yaml, else every bind of
the haproxy config (-f, default haproxy.configs); the kind is inferred from
the section and --kind overrides it. Attempts per target default to
max(20, 4 x processes LISTENing there) so SO_REUSEPORT ghosts are reached.

It also reads 'show stat' from the stats socket and lists every server's
status and last check. Exit codes: 0 every attempt OK, 1 any failed,
2 usage error or unreadable input.`,
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.targets, "target", nil, "host:port to probe (repeatable)")
	fl.StringVar(&f.kind, "kind", "", "probe kind: tcp, mysql, http or idle-hold (default: inferred)")
	fl.StringVar(&f.over, "over", "", "idle-hold: protocol on the held connection, mysql or tcp (default: inferred)")
	fl.IntVar(&f.count, "count", 0, "attempts per target (default: max(20, 4 x listening processes); idle-hold: one per process)")
	fl.DurationVar(&f.idle, "idle", 30*time.Second, "idle-hold: how long to hold the connection idle")
	fl.IntVar(&f.concurrency, "concurrency", 0, "attempts in flight (default: probe.concurrency, 8)")
	fl.DurationVar(&f.timeout, "timeout", 0, "deadline of one attempt (default: probe.timeout, 3s)")
	fl.StringArrayVarP(&f.haproxyCfgs, "haproxy-config", "f", nil, "haproxy config file(s) whose binds to probe (default: haproxy.configs)")
	fl.StringVar(&f.statsSocket, "stats-socket", "", "haproxy stats/admin socket for 'show stat' (default: haproxy.stats_socket; \"none\" to skip)")
	fl.StringVar(&f.user, "mysql-user", "", "mysql/idle-hold: log in as this user (default: probe.mysql.user)")
	fl.StringVar(&f.passwordFile, "mysql-password-file", "", "file holding the password of --mysql-user (default: probe.mysql.password[_file])")
	fl.StringVar(&f.send, "send", "", "tcp: bytes to send after connecting")
	fl.StringVar(&f.expect, "expect", "", "tcp: regular expression the reply must match")
	fl.DurationVar(&f.linger, "linger", 0, "tcp without --expect: fail if the peer closes within this time after accept (a proxy with no server)")
	fl.StringVar(&f.path, "path", "", "http: request path (default /)")
	fl.IntVar(&f.expectStatus, "expect-status", 0, "http: wanted status (default: any 2xx)")
	fl.StringVar(&f.expectBody, "expect-body", "", "http: regular expression the body must match")
	cmd.RunE = a.exec(func(ctx context.Context) (int, error) {
		return a.runProbe(ctx, cmd, f)
	})
	return cmd
}

func (a *app) runProbe(ctx context.Context, cmd *cobra.Command, f probeFlags) (int, error) {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return exitUsage, err
	}
	if err := f.validate(); err != nil {
		return exitUsage, usagef(err)
	}
	log := a.logger()
	// What runs (the -f files) comes from the unit, when it can be asked.
	h, closeFn, err := openHostBestEffort(ctx, cfg, unitFlags{}, log)
	if err != nil {
		return exitUsage, err
	}
	closeFn()
	cfg = h.Config()
	targets, vc, err := probeTargets(cmd, f, cfg)
	if err != nil {
		return exitUsage, err
	}
	if len(targets) == 0 {
		return exitUsage, usagef(errors.New("nothing to probe: give --target, probe.targets in haguard.yaml, or a haproxy config with TCP binds"))
	}

	opts := probe.Options{
		Count:       f.count,
		Concurrency: cfg.Probe.Concurrency,
		Timeout:     cfg.Probe.Timeout.D(),
		Logger:      log,
		Progress:    func(line string) { fmt.Fprintf(a.stderr, "haguard probe: %s\n", line) },
	}
	if f.concurrency > 0 {
		opts.Concurrency = f.concurrency
	}
	if f.timeout > 0 {
		opts.Timeout = f.timeout
	}
	if opts.Count == 0 && cfg.Probe.Count > 0 {
		opts.Count = cfg.Probe.Count
	}
	// An explicit stats socket that cannot be read is unreadable input,
	// and better said before a long idle-hold.
	socket, explicit := cfg.HAProxy.StatsSocket, cmd.Flags().Changed("stats-socket")
	switch {
	case explicit:
		socket = f.statsSocket
	case socket == "":
		socket = vc.StatsSocket() // the config's own "stats socket"
	}
	rep, err := probe.WithHealth(ctx, targets, opts, socket, explicit)
	if err != nil {
		return exitUsage, err
	}
	code := exitOK
	if !rep.OK {
		code = exitNegative
	}
	return code, a.writeResult(rep, func(w io.Writer) { writeProbeHuman(w, rep) })
}

func (f probeFlags) validate() error {
	switch f.kind {
	case "", probe.KindTCP, probe.KindMySQL, probe.KindHTTP, probe.KindIdleHold:
	default:
		return fmt.Errorf("--kind: %q is not tcp, mysql, http or idle-hold", f.kind)
	}
	switch f.over {
	case "", probe.KindTCP, probe.KindMySQL:
	default:
		return fmt.Errorf("--over: %q is not mysql or tcp", f.over)
	}
	if f.count < 0 || f.concurrency < 0 || f.timeout < 0 || f.linger < 0 {
		return errors.New("--count, --concurrency, --timeout and --linger must not be negative")
	}
	if f.idle <= 0 {
		return errors.New("--idle must be positive")
	}
	for _, t := range f.targets {
		host, port, err := net.SplitHostPort(t)
		if err != nil || host == "" {
			return fmt.Errorf("--target %q: want host:port", t)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("--target %q: bad port", t)
		}
	}
	return nil
}

// probeTargets picks the targets (probe.Select: --target, else -f, else
// haguard.yaml's probe.targets, else the binds of haproxy.configs) and
// sets the flags that shape an attempt on every one.
func probeTargets(cmd *cobra.Command, f probeFlags, cfg config.Config) ([]probe.Target, *validate.Config, error) {
	targets, vc, err := probe.Select(probe.Selection{Addresses: f.targets, Files: f.haproxyCfgs, Kind: f.kind, Over: f.over},
		cfg.Probe, cfg.HAProxy.Configs)
	if err != nil {
		return nil, nil, usagef(err)
	}
	auth := cfg.Probe.MySQL
	if f.user != "" {
		auth = config.DBAuth{User: f.user}
	}
	if f.passwordFile != "" {
		auth.PasswordFile = f.passwordFile
	}
	user, password, err := probe.Credentials(auth)
	if err != nil {
		return nil, nil, usagef(err)
	}
	fl := cmd.Flags()
	o := probe.Override{Kind: f.kind, Over: f.over, Idle: f.idle, IdleSet: fl.Changed("idle"), User: user, Password: password,
		Send: changed(fl.Changed("send"), f.send), Expect: changed(fl.Changed("expect"), f.expect),
		Path: changed(fl.Changed("path"), f.path), Body: changed(fl.Changed("expect-body"), f.expectBody),
		Linger: changed(fl.Changed("linger"), f.linger), ExpectStatus: changed(fl.Changed("expect-status"), f.expectStatus)}
	o.Apply(targets)
	return targets, vc, nil
}

// changed is &v when the flag was given, else nil.
func changed[T any](given bool, v T) *T {
	if !given {
		return nil
	}
	return &v
}

// writeProbeHuman prints one line per target, its error histogram and
// idle-hold outcome, then the servers table.
func writeProbeHuman(w io.Writer, rep probe.Report) {
	for _, t := range rep.Targets {
		verdict := "OK"
		if t.Fail > 0 {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "%s %-6s %s %d/%d  p50 %s max %s\n", t.Target, t.Kind, verdict, t.OK, t.AttemptsTotal,
			fmtMS(t.LatencyMS.P50), fmtMS(t.LatencyMS.Max))
		reasons := make([]string, 0, len(t.Errors))
		for r := range t.Errors {
			reasons = append(reasons, r)
		}
		slices.SortFunc(reasons, func(x, y string) int { return t.Errors[y] - t.Errors[x] })
		for _, r := range reasons {
			fmt.Fprintf(w, "    %4d x %s\n", t.Errors[r], r)
		}
		if v := firstVersion(t.Attempts); v != "" {
			fmt.Fprintf(w, "    server %s\n", v)
		}
		for _, a := range t.Attempts {
			if a.Idle == nil {
				continue
			}
			if a.Idle.Closed {
				fmt.Fprintf(w, "    closed by %s after %s idle (%s)\n", a.Idle.ClosedBy, fmtMS(a.Idle.ClosedAfterMS), a.Idle.How)
			} else if a.OK {
				fmt.Fprintf(w, "    held %s idle, then used it: not cut\n", fmtMS(a.Idle.IdleMS))
			}
		}
		if t.Fail > 0 {
			for _, a := range t.Attempts {
				if !a.OK {
					fmt.Fprintf(w, "    first error: %s\n", a.Error)
					break
				}
			}
		}
	}
	if len(rep.Servers) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "BACKEND\tSERVER\tSTATUS\tCHECK")
		for _, s := range rep.Servers {
			check := s.CheckStatus
			if s.CheckCode != 0 {
				check = fmt.Sprintf("%s %d", check, s.CheckCode)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Backend, s.Server, s.Status, check)
		}
		tw.Flush()
	}
	for _, b := range rep.BackendsDown {
		fmt.Fprintf(w, "backend %s (%s): down %s, %d up\n", b.Backend, b.Status, strings.Join(b.ServersDown, ", "), b.ServersUp)
	}
	if rep.StatsError != "" {
		fmt.Fprintf(w, "server health unknown: %s\n", rep.StatsError)
	}
}

func firstVersion(as []probe.Attempt) string {
	for _, a := range as {
		if a.ServerVersion != "" {
			return a.ServerVersion
		}
	}
	return ""
}

func fmtMS(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0fms", ms)
	default:
		return fmt.Sprintf("%.1fms", ms)
	}
}
