package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
)

// completionTimeout bounds what a completion asks systemd or reads.
const completionTimeout = 2 * time.Second

// flagValues are the fixed values of flags, wherever they are defined.
var flagValues = map[string][]string{
	"format":    {"human\tfor people", "json\tone JSON document on stdout", "jsonl\treload's steps as they happen, one JSON object per line, then the result"},
	"log-level": {"debug", "info", "warn", "error"},
	"facts":     {"none\tthe config alone", "declared\thaguard.yaml's path, pools and DB settings", "live\talso ask the databases and the kernel"},
	"fail-on":   {"error", "warning"},
	"kind":      {"tcp", "mysql", "http", "idle-hold"},
	"over":      {"mysql", "tcp"},
}

// noFiles are flags whose value is never a file name.
var noFiles = []string{"target", "listen", "bus-address", "reason", "limit", "count", "concurrency", "timeout",
	"idle", "grace", "settle", "cache", "dsn", "send", "expect", "linger", "path", "expect-status", "expect-body", "mysql-user"}

// registerCompletions gives the shells the values of haguard's flags
// (cobra's __complete): the fixed ones, systemd units for --unit, YAML
// files for --config-file, and the history's ids for rollback's argument.
func (a *app) registerCompletions(root *cobra.Command) {
	fixed := func(vals []string) cobra.CompletionFunc {
		return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var out []cobra.Completion
			for _, v := range vals {
				if strings.HasPrefix(v, toComplete) {
					out = append(out, v)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
	for _, c := range append([]*cobra.Command{root}, root.Commands()...) {
		fs := c.LocalFlags()
		if c != root {
			fs = c.NonInheritedFlags()
		}
		register := func(name string, fn cobra.CompletionFunc) {
			if fs.Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, fn) // only fails for an unknown or a registered flag
			}
		}
		for name, vals := range flagValues {
			register(name, fixed(vals))
		}
		for _, name := range noFiles {
			register(name, cobra.NoFileCompletions)
		}
		register("unit", a.completeUnits)
		if fs.Lookup("config-file") != nil {
			_ = c.MarkFlagFilename("config-file", "yaml", "yml")
		}
	}
	for _, c := range root.Commands() {
		if c.Name() == "rollback" {
			c.ValidArgsFunction = a.completeRollbackIDs
		}
	}
}

// completeUnits lists the loaded systemd units named haproxy*, as the
// --bus-address and haguard.yaml in effect reach them.
func (a *app) completeUnits(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		cfg = config.Default()
	}
	if bus, _ := cmd.Flags().GetString("bus-address"); bus != "" {
		cfg.Systemd.BusAddress = bus
	}
	ctx, cancel := context.WithTimeout(completionContext(cmd), completionTimeout)
	defer cancel()
	c, err := systemd.Dial(ctx, cfg.Systemd.BusAddress)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer c.Close()
	units, err := c.Units(ctx, []string{"haproxy*"})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	template := false
	for _, u := range units {
		if strings.HasPrefix(u, toComplete) {
			out = append(out, u)
		}
		template = template || strings.Contains(u, "@")
	}
	if template && strings.HasPrefix("haproxy@*.service", toComplete) {
		out = append(out, "haproxy@*.service\tevery instance")
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeRollbackIDs lists the transactions `haguard rollback ID` can
// return to (those haguard kept a snapshot before), newest first, each
// with its outcome, time and reason.
func (a *app) completeRollbackIDs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	if units := listOf(cmd.Flags(), "unit"); len(units) == 1 && !isGlob(units[0]) {
		cfg = forUnit(cfg, units[0])
	}
	es, err := reload.ReadHistory(cfg.StateDir)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if e.BeforeSHA256 == "" || !strings.HasPrefix(e.ID, toComplete) {
			continue
		}
		desc := fmt.Sprintf("%s %s", e.Outcome, e.Time.Format("2006-01-02 15:04"))
		if e.Reason != "" {
			desc += " " + oneLine(e.Reason, 40)
		}
		out = append(out, e.ID+"\t"+desc)
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

func completionContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
