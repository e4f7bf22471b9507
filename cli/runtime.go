package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/agent/runtime"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/reload"
)

type runtimeFlags struct {
	unit    unitFlags
	reason  string
	ifMatch string
}

func addRuntimeFlags(cmd *cobra.Command, f *runtimeFlags) {
	cmd.Flags().StringVar(&f.reason, "reason", "", "why, for the history and audit log")
	cmd.Flags().StringVar(&f.ifMatch, "if-match", "", "apply only if the config set's identity (status disk_sha256) is still this")
	addUnitFlags(cmd, &f.unit)
}

func (a *app) serverCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Change a server at runtime on every live haproxy process, and keep it in the config",
		Long: `server changes a backend server without a reload (docs/runtime.md): through
the master CLI it reaches every live worker, the current generation and
the old workers still draining connections, reads the result back from
each, and writes it into the config set with the reload transaction's
own lock, If-Match, snapshot, atomic install, history and audit.`,
	}
	cmd.AddCommand(a.serverSetCmd(), a.serverDrainCmd(), a.serverListCmd())
	return cmd
}

// parseServer reads BACKEND/SERVER.
func parseServer(arg string) (string, string, error) {
	be, srv, ok := strings.Cut(arg, "/")
	if !ok || be == "" || srv == "" || strings.Contains(srv, "/") {
		return "", "", usagef(fmt.Errorf("%q: want BACKEND/SERVER", arg))
	}
	return be, srv, nil
}

// parseAddr reads IP or IP:PORT (an IPv6 address with a port in brackets).
func parseAddr(s string) (string, int, error) {
	if net.ParseIP(s) != nil {
		return s, 0, nil
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil || net.ParseIP(h) == nil {
		return "", 0, usagef(fmt.Errorf("--addr %q: want IP or IP:PORT", s))
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, usagef(fmt.Errorf("--addr %q: bad port", s))
	}
	return h, port, nil
}

func (a *app) serverSetCmd() *cobra.Command {
	var (
		f      runtimeFlags
		state  string
		weight int
		addr   string
	)
	cmd := &cobra.Command{
		Use:   "set BACKEND/SERVER [--state ready|drain|maint] [--weight N] [--addr IP[:PORT]]",
		Short: "Set a server's state, weight or address on every live process, and in the config",
		Long: `set applies the change to every live haproxy process through the master CLI
(@!PID), reads it back from each, then writes it into the config set
without a reload: "disabled" on the server line for maint, "weight N",
the address. drain has no config keyword: it is kept across reloads by
the server state haguard hands to the next generation.

The current generation must take the change. An old worker still
draining connections takes it where its haproxy accepts it; haproxy 2.6
refuses server changes on a stopping proxy ("Proxy is disabled."): the
report names that worker and the sessions it still holds on the server,
and the exit code is 0. Any other failure (a process refuses, or dies
mid-apply) reverts the processes that took the change, writes nothing,
and exits 1 naming the process.

Exit codes: 0 applied and written; 1 refused, reverted, nothing written;
2 usage error (unknown server, bad value, stale --if-match is 1); 3 the
change could not be persisted nor reverted: the host needs a human.`,
		Example: `  haguard server set be_app/web1 --state drain
  haguard server set be_app/web1 --weight 50 --reason canary
  haguard server set be_app/web1 --addr 10.0.0.12:8080`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&state, "state", "", "admin state: ready, drain or maint")
	cmd.Flags().IntVar(&weight, "weight", -1, "weight, 0 to 256")
	cmd.Flags().StringVar(&addr, "addr", "", "address: IP or IP:PORT")
	addRuntimeFlags(cmd, &f)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
			be, srv, err := parseServer(args[0])
			if err != nil {
				return exitUsage, err
			}
			c := runtime.ServerChange{Backend: be, Server: srv, State: state}
			if cmd.Flags().Changed("weight") {
				c.Weight = &weight
			}
			if addr != "" {
				if c.Addr, c.Port, err = parseAddr(addr); err != nil {
					return exitUsage, err
				}
			}
			if err := c.Validate(); err != nil {
				return exitUsage, usagef(err)
			}
			return a.runRuntime(ctx, cfg, f, func(rt *runtime.Runtime, rep *runtime.Report) reload.RuntimeChange {
				return host.ServerChange(rt, c, rep)
			}, nil)
		})(cmd, args)
	}
	return cmd
}

func (a *app) serverDrainCmd() *cobra.Command {
	var (
		f       runtimeFlags
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "drain BACKEND/SERVER [--wait [--timeout 10m]]",
		Short: "Drain a server on every live process and wait until no process holds a session on it",
		Long: `drain is 'server set BACKEND/SERVER --state drain'. With --wait it then
waits until the server's current sessions are 0 in every live process,
old workers included (each process's 'show sess'), showing the count as
it falls on a terminal. An old worker that exits stops counting.

Exit codes: 0 drained (or, without --wait, set to drain); 1 the change
was refused, or --timeout passed with sessions left (the server stays in
drain); 2 usage error; 3 the host needs a human.`,
		Example: `  haguard server drain be_app/web1 --wait --timeout 10m`,
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until no live process holds a session on the server")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "with --wait: give up after this long (exit 1)")
	addRuntimeFlags(cmd, &f)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
			be, srv, err := parseServer(args[0])
			if err != nil {
				return exitUsage, err
			}
			if timeout <= 0 {
				return exitUsage, usagef(fmt.Errorf("--timeout %s: want more than 0", timeout))
			}
			c := runtime.ServerChange{Backend: be, Server: srv, State: runtime.StateDrain}
			var after func(ctx context.Context, rt *runtime.Runtime, out *host.RuntimeResult) int
			if wait {
				after = func(ctx context.Context, rt *runtime.Runtime, out *host.RuntimeResult) int {
					return a.waitDrained(ctx, rt, be, srv, timeout, out)
				}
			}
			return a.runRuntime(ctx, cfg, f, func(rt *runtime.Runtime, rep *runtime.Report) reload.RuntimeChange {
				return host.ServerChange(rt, c, rep)
			}, after)
		})(cmd, args)
	}
	return cmd
}

// waitDrained waits until no live process holds a session on be/srv,
// showing the count on a terminal.
func (a *app) waitDrained(ctx context.Context, rt *runtime.Runtime, be, srv string, timeout time.Duration, out *host.RuntimeResult) int {
	begin := time.Now()
	tty := terminal(a.stdout)
	if a.jsonOutput() || os.Getenv("TERM") == "dumb" {
		tty = nil
	}
	var seen func([]runtime.ProcSessions, int)
	if tty != nil {
		seen = func(ps []runtime.ProcSessions, total int) {
			fmt.Fprintf(tty, "\r\033[Kdraining %s/%s: %d sessions in %d processes, %s", be, srv, total, len(ps), time.Since(begin).Round(time.Second))
		}
	}
	out.Drain = host.WaitDrained(ctx, rt, be, srv, timeout, seen)
	if tty != nil {
		fmt.Fprint(tty, "\r\033[K")
	}
	if !out.Drain.Done {
		return exitNegative
	}
	return exitOK
}

func (a *app) mapCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "map",
		Short: "Change a map's entries on every live haproxy process, and in the map file",
		Long: `map adds, sets or deletes an entry of a map file the config loads, on every
live haproxy process (old workers included: haproxy accepts map changes
in a draining worker) and in the file, without a reload (docs/runtime.md).
MAP is the map file's absolute path, as the config names it.`,
	}
	for _, op := range []string{runtime.MapAdd, runtime.MapSet, runtime.MapDel} {
		cmd.AddCommand(a.mapOpCmd(op))
	}
	cmd.AddCommand(a.mapListCmd())
	return cmd
}

func (a *app) mapOpCmd(op string) *cobra.Command {
	var f runtimeFlags
	use, args, short := op+" MAP KEY VALUE", cobra.ExactArgs(3), "Add an entry (refused when the key is there: use set)"
	switch op {
	case runtime.MapSet:
		short = "Set the value of an existing key"
	case runtime.MapDel:
		use, args, short = op+" MAP KEY", cobra.ExactArgs(2), "Delete a key"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short + " on every live process and in the map file",
		Long: short + ` on every live haproxy process and in the map file, without a reload.
Every live process must take it, old workers included; otherwise the
processes that took it are reverted, nothing is written, and the exit
code is 1, naming the process.

Exit codes: 0 applied and written; 1 refused or reverted; 2 usage error
(a map the config does not load, a key that is there for add or missing
for set and del); 3 the host needs a human.`,
		Example: "  haguard map " + op + " /etc/haproxy/hosts.map www.example.com" + map[bool]string{true: "", false: " be_new"}[op == runtime.MapDel],
		Args:    args,
	}
	addRuntimeFlags(cmd, &f)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
			c := runtime.MapChange{Op: op, Map: args[0], Key: args[1]}
			if len(args) > 2 {
				c.Value = args[2]
			}
			if err := c.Validate(); err != nil {
				return exitUsage, usagef(err)
			}
			return a.runRuntime(ctx, cfg, f, func(rt *runtime.Runtime, rep *runtime.Report) reload.RuntimeChange {
				return host.MapChange(rt, c, rep)
			}, nil)
		})(cmd, args)
	}
	return cmd
}

// runRuntime applies and persists one runtime change and prints the
// report; after, when set, runs once it is applied (drain --wait).
func (a *app) runRuntime(ctx context.Context, cfg config.Config, f runtimeFlags,
	change func(*runtime.Runtime, *runtime.Report) reload.RuntimeChange,
	after func(context.Context, *runtime.Runtime, *host.RuntimeResult) int) (int, error) {
	if f.unit.several() {
		return exitUsage, usagef(errors.New("--unit: a runtime change goes to one unit; name one"))
	}
	h, closeFn, err := openHost(ctx, cfg, f.unit, a.reportLogger())
	if err != nil {
		return exitUsage, err
	}
	defer closeFn()
	rt, err := h.Runtime()
	if err != nil {
		return exitUsage, usagef(err)
	}
	r, err := h.Reloader()
	if err != nil {
		return exitUsage, err
	}
	out, err := host.ApplyRuntime(ctx, r, rt, reload.Options{Who: who(), Reason: f.reason}, f.ifMatch, change)
	rep := out.Change
	code := exitOK
	switch {
	case err == nil:
	case errors.Is(err, runtime.ErrNotFound) || errors.Is(err, runtime.ErrExists):
		code = exitUsage
	case errors.Is(err, reload.ErrBroken):
		code = exitBroken
	default:
		code = exitNegative
	}
	if err == nil && after != nil {
		code = after(ctx, rt, &out)
		out.OK = code == exitOK
	}
	if werr := a.writeResult(out, func(w io.Writer) { writeRuntimeHuman(w, out) }); werr != nil {
		return exitBroken, werr
	}
	if err != nil {
		return code, err
	}
	if out.Drain != nil && !out.Drain.Done {
		return code, fmt.Errorf("timed out after %s: %d sessions left on %s", time.Duration(out.Drain.WaitedMS)*time.Millisecond, out.Drain.Sessions, rep.Target)
	}
	return code, nil
}

func writeRuntimeHuman(w io.Writer, out host.RuntimeResult) {
	c := out.Change
	fmt.Fprintf(w, "%s %s: %s\n", c.Kind, c.Target, c.Change)
	for _, p := range c.Processes {
		gen := "old worker"
		if p.Current {
			gen = "current"
		}
		line := fmt.Sprintf("  %-10s pid %-7d %-13s", gen, p.PID, p.Outcome)
		switch {
		case p.After != nil:
			line += fmt.Sprintf(" %s weight %d %s:%d", strings.ToUpper(p.After.State), p.After.Weight, p.After.Addr, p.After.Port)
		case p.Outcome == runtime.Refused && p.Before != nil:
			line += fmt.Sprintf(" keeps %s weight %d %s:%d, %d sessions on it: %s", strings.ToUpper(p.Before.State), p.Before.Weight, p.Before.Addr, p.Before.Port, p.Sessions, p.Answer)
		case p.Answer != "":
			line += " " + p.Answer
		}
		fmt.Fprintln(w, line)
	}
	for _, s := range out.Stages {
		if !s.OK {
			fmt.Fprintf(w, "  %s failed: %s\n", s.Name, s.Error)
		}
	}
	switch {
	case out.Error != "" && c.Reverted:
		fmt.Fprintf(w, "not applied: reverted on every process that had taken it; nothing written (%s)\n", out.ID)
	case out.Error != "":
		fmt.Fprintf(w, "not applied; nothing written\n")
	default:
		fmt.Fprintf(w, "applied and written to the config set (%s)\n", out.ID)
	}
	if d := out.Drain; d != nil {
		if d.Done {
			fmt.Fprintf(w, "drained: no live process holds a session on it (%s)\n", time.Duration(d.WaitedMS)*time.Millisecond)
		} else {
			fmt.Fprintf(w, "timed out: %d sessions left in %d processes\n", d.Sessions, len(d.Processes))
		}
	}
}

func (a *app) serverListCmd() *cobra.Command {
	var uf unitFlags
	cmd := &cobra.Command{
		Use:   "list [BACKEND]",
		Short: "Show each server's state in every live process, side by side, and its config line",
		Long: `list reads 'show servers state' and 'show sess' from every live haproxy
process (current and old workers) and prints each server's admin state,
weight, address and sessions per process, side by side, with what its
config line says; drift lists where the current worker and the config
differ (maint against "disabled", weight, address).`,
		Args: cobra.MaximumNArgs(1),
	}
	addUnitFlags(cmd, &uf)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
			be := ""
			if len(args) == 1 {
				be = args[0]
			}
			h, closeFn, err := openHost(ctx, cfg, uf, a.logger())
			if err != nil {
				return exitUsage, err
			}
			defer closeFn()
			rt, err := h.Runtime()
			if err != nil {
				return exitUsage, usagef(err)
			}
			rows, err := host.ServerRows(ctx, rt, h.Config().HAProxy.Configs, be)
			if err != nil {
				return exitNegative, err
			}
			if err := a.writeResult(rows, func(w io.Writer) { writeServerRows(w, rows) }); err != nil {
				return exitBroken, err
			}
			return exitOK, nil
		})(cmd, args)
	}
	return cmd
}

func writeServerRows(w io.Writer, rows []host.ServerRow) {
	for _, r := range rows {
		fmt.Fprintf(w, "%s/%s", r.Backend, r.Server)
		if c := r.Config; c != nil {
			st := "enabled"
			if c.Disabled {
				st = "disabled"
			}
			fmt.Fprintf(w, "  (config: %s:%d weight %d %s)", c.Addr, c.Port, c.Weight, st)
		}
		fmt.Fprintln(w)
		for _, p := range r.Processes {
			gen := "old"
			if p.Current {
				gen = "current"
			}
			up := "DOWN"
			if p.Server.Up {
				up = "UP"
			}
			fmt.Fprintf(w, "    %-7s pid %-7d %-5s %-4s weight %-3d %s:%d  %d sessions\n", gen, p.PID, strings.ToUpper(p.Server.State), up,
				p.Server.Weight, p.Server.Addr, p.Server.Port, p.Sessions)
		}
		if len(r.Drift) > 0 {
			fmt.Fprintf(w, "    drift: %s\n", strings.Join(r.Drift, "; "))
		}
	}
}

func (a *app) mapListCmd() *cobra.Command {
	var uf unitFlags
	cmd := &cobra.Command{
		Use:   "list MAP",
		Short: "Show a map's entries in every live process",
		Long: `list prints the map's entries as each live haproxy process holds them
('show map MAP' through @!PID), and says where a process differs from the
current worker or from the file.`,
		Args: cobra.ExactArgs(1),
	}
	addUnitFlags(cmd, &uf)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
			h, closeFn, err := openHost(ctx, cfg, uf, a.logger())
			if err != nil {
				return exitUsage, err
			}
			defer closeFn()
			rt, err := h.Runtime()
			if err != nil {
				return exitUsage, usagef(err)
			}
			ps, err := rt.Processes(ctx)
			if err != nil {
				return exitNegative, err
			}
			type procMap struct {
				PID     int32           `json:"pid"`
				Current bool            `json:"current"`
				Entries []runtime.Entry `json:"entries"`
				Error   string          `json:"error,omitempty"`
			}
			var out struct {
				Map       string          `json:"map"`
				File      []runtime.Entry `json:"file"`
				Processes []procMap       `json:"processes"`
			}
			out.Map = args[0]
			if b, err := os.ReadFile(args[0]); err == nil {
				out.File = runtime.ParseMapFile(b)
			}
			for _, p := range ps {
				es, err := rt.Map(ctx, p.PID, args[0])
				pm := procMap{PID: p.PID, Current: p.Current, Entries: es}
				if err != nil {
					if p.Current {
						return exitUsage, usagef(err)
					}
					pm.Error = err.Error()
				}
				out.Processes = append(out.Processes, pm)
			}
			return exitOK, a.writeResult(out, func(w io.Writer) {
				fmt.Fprintf(w, "%s: %d entries in the file\n", out.Map, len(out.File))
				for _, p := range out.Processes {
					gen := "old"
					if p.Current {
						gen = "current"
					}
					fmt.Fprintf(w, "  %-7s pid %d: %d entries%s\n", gen, p.PID, len(p.Entries), map[bool]string{true: " (" + p.Error + ")", false: ""}[p.Error != ""])
					for _, e := range p.Entries {
						fmt.Fprintf(w, "    %s %s\n", e.Key, e.Value)
					}
				}
			})
		})(cmd, args)
	}
	return cmd
}
