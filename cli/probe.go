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
the way a client would, N times each, and reports every attempt. By default
a probe must reach a server, not just haproxy:

  tcp        connect, then watch the connection: a greeting (SSH, SMTP, FTP,
             POP3/IMAP, MySQL speak first) passes at once; haproxy closing the
             accepted connection fails ("closed by proxy after accept": it
             found no server); silence passes after the linger, which is
             haproxy's own give-up time (retries x min(timeout connect, 1s),
             from the config) plus 300ms. If the server greets on some
             attempts, the silent ones fail ("no greeting"). --send/--expect
             replace all this with a request and a pattern.
  mysql      the server's v10 handshake through haproxy; with --mysql-user a
             login, where "access denied" 1045 still counts as OK.
  http       GET --path (default /): haproxy's own 500/502/503/504 page fails
             ("haproxy 503": no server answered), a server's 5xx fails
             ("http status 503"), any other answer passes; --expect-status
             pins the status.
  idle-hold  hold a connection idle for --idle, then use it: reports whether
             and when the path closed it, and whether the server or the proxy
             did.

Targets: --target, else probe.targets in haguard.yaml, else every bind of
the haproxy config (-f, default haproxy.configs); the kind is inferred from
the section and --kind overrides it. Attempts per target default to
max(20, 4 x processes LISTENing there) so SO_REUSEPORT ghosts are reached.

It also reads 'show stat' from the stats socket and lists every server's
status and last check; a backend that a probed listener routes to with no
server UP fails the probe too. Exit codes: 0 every attempt OK and every
such backend has a server UP, 1 otherwise, 2 usage error or unreadable
input.`,
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	listVarP(fl, &f.targets, "target", "", false, "host:port to probe (repeatable)")
	fl.StringVar(&f.kind, "kind", "", "probe kind: tcp, mysql, http or idle-hold (default: inferred)")
	fl.StringVar(&f.over, "over", "", "idle-hold: protocol on the held connection, mysql or tcp (default: inferred)")
	fl.IntVar(&f.count, "count", 0, "attempts per target (default: max(20, 4 x listening processes); idle-hold: one per process)")
	fl.DurationVar(&f.idle, "idle", 30*time.Second, "idle-hold: how long to hold the connection idle")
	fl.IntVar(&f.concurrency, "concurrency", 0, "attempts in flight (default: probe.concurrency, 8)")
	fl.DurationVar(&f.timeout, "timeout", 0, "deadline of one attempt (default: probe.timeout, 3s)")
	listVarP(fl, &f.haproxyCfgs, "haproxy-config", "f", false, "haproxy config file(s) whose binds to probe (default: haproxy.configs)")
	fl.StringVar(&f.statsSocket, "stats-socket", "", "haproxy stats/admin socket for 'show stat' (default: haproxy.stats_socket; \"none\" to skip)")
	fl.StringVar(&f.user, "mysql-user", "", "mysql/idle-hold: log in as this user (default: probe.mysql.user)")
	fl.StringVar(&f.passwordFile, "mysql-password-file", "", "file holding the password of --mysql-user (default: probe.mysql.password[_file])")
	fl.StringVar(&f.send, "send", "", "tcp: bytes to send after connecting")
	fl.StringVar(&f.expect, "expect", "", "tcp: regular expression the reply must match")
	fl.DurationVar(&f.linger, "linger", 0, "tcp without --expect: fail if the peer closes within this time after accept (default: haproxy's give-up time + 300ms; 0 turns it off)")
	fl.StringVar(&f.path, "path", "", "http: request path (default /)")
	fl.IntVar(&f.expectStatus, "expect-status", 0, "http: wanted status (default: any answer from a server but a new 5xx)")
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
	// An explicit stats socket that cannot be read is unreadable input,
	// and better said before a long idle-hold.
	socket, explicit := cfg.HAProxy.StatsSocket, cmd.Flags().Changed("stats-socket")
	if explicit {
		socket = f.statsSocket
	}
	targets, vc, err := probeTargets(cmd, f, cfg, socket != "none")
	if err != nil {
		return exitUsage, err
	}
	if socket == "" {
		socket = vc.StatsSocket() // the config's own "stats socket"
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
// sets the flags that shape an attempt on every one. health says the
// stats socket will be read: the config's routes are then needed for the
// backend verdict, as they are for a tcp probe's default linger.
func probeTargets(cmd *cobra.Command, f probeFlags, cfg config.Config, health bool) ([]probe.Target, *validate.Config, error) {
	fl := cmd.Flags()
	routes := health || (f.kind == probe.KindTCP && !fl.Changed("linger") && !fl.Changed("expect"))
	targets, vc, err := probe.Select(probe.Selection{Addresses: f.targets, Files: f.haproxyCfgs, Kind: f.kind, Over: f.over, Routes: routes},
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

// writeProbeHuman prints one line per target (the tally with a reason
// breakdown of the failures), its details, then the servers table, the
// backends without a server UP and a verdict line.
func writeProbeHuman(w io.Writer, rep probe.Report) {
	for _, t := range rep.Targets {
		line := fmt.Sprintf("%s %-6s %s", t.Target, t.Kind, probeTally(t.OK, t.AttemptsTotal, t.Errors))
		if t.LingerMS > 0 {
			line += "  linger " + fmtMS(t.LingerMS)
		}
		fmt.Fprintf(w, "%s  p50 %s max %s\n", line, fmtMS(t.LatencyMS.P50), fmtMS(t.LatencyMS.Max))
		if v := firstVersion(t.Attempts); v != "" {
			fmt.Fprintf(w, "    server %s\n", v)
		} else if g := firstGreeting(t.Attempts); g != "" {
			fmt.Fprintf(w, "    greeting \"%s\"\n", g)
		}
		if b := t.Baseline; b != nil {
			fmt.Fprintf(w, "    before: %s\n", beforeText(*b))
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
		if n := firstNote(t.Attempts); n != "" {
			fmt.Fprintf(w, "    note: %s\n", n)
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
	for _, n := range rep.NoServerUp {
		fmt.Fprintf(w, "backend %s has no server UP (%s); %s routes there\n", n.Backend, strings.Join(n.Servers, ", "), strings.Join(n.Targets, ", "))
	}
	if rep.StatsError != "" {
		fmt.Fprintf(w, "server health unknown: %s\n", rep.StatsError)
	}
	fmt.Fprintln(w, probeVerdict(rep))
}

// probeTally is "OK 6/20 (14 failed: 14 × closed by proxy after accept)":
// the passed attempts, then every failure reason with its count, most
// frequent first.
func probeTally(ok, total int, errs map[string]int) string {
	s := fmt.Sprintf("OK %d/%d", ok, total)
	if ok == total {
		return s
	}
	reasons := make([]string, 0, len(errs))
	for r := range errs {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(x, y string) int {
		if errs[x] != errs[y] {
			return errs[y] - errs[x]
		}
		return strings.Compare(x, y)
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%d × %s", errs[r], r)
	}
	return fmt.Sprintf("%s (%d failed: %s)", s, total-ok, strings.Join(parts, ", "))
}

// probeVerdict is the last line: the attempts over every target, and the
// backends without a server UP.
func probeVerdict(rep probe.Report) string {
	ok, total := 0, 0
	errs := map[string]int{}
	for _, t := range rep.Targets {
		ok, total = ok+t.OK, total+t.AttemptsTotal
		for r, n := range t.Errors {
			errs[r] += n
		}
	}
	v := "probe OK: "
	if !rep.OK {
		v = "probe FAILED: "
	}
	v += probeTally(ok, total, errs)
	if n := len(rep.NoServerUp); n > 0 {
		names := make([]string, n)
		for i, b := range rep.NoServerUp {
			names[i] = b.Backend
		}
		v += fmt.Sprintf("; no server UP in %s", strings.Join(names, ", "))
	}
	return v
}

// beforeText sums up a baseline: what the probe before the change saw.
func beforeText(b probe.Expectation) string {
	s := probeTally(b.OK, b.Attempts, b.Errors)
	if b.Greets {
		s += fmt.Sprintf(", greeted \"%s\"", b.Greeting)
	}
	if len(b.Statuses) > 0 {
		st := make([]string, len(b.Statuses))
		for i, c := range b.Statuses {
			st[i] = strconv.Itoa(c)
		}
		s += ", status " + strings.Join(st, "/")
	}
	return s
}

func firstGreeting(as []probe.Attempt) string {
	for _, a := range as {
		if a.Greeting != "" {
			return a.Greeting
		}
	}
	return ""
}

func firstNote(as []probe.Attempt) string {
	for _, a := range as {
		if a.Note != "" {
			return a.Note
		}
	}
	return ""
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
