package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/validate"
)

type diffOpts struct {
	candidate string
	exitCode  bool
	unit      unitFlags
}

func (a *app) diffCmd() *cobra.Command {
	var o diffOpts
	cmd := &cobra.Command{
		Use:   "diff [--candidate FILE|DIR]",
		Short: "Show what a candidate changes against the running config, and what needs a reload",
		Long: `diff compares a candidate with the config that runs, by meaning: sections,
binds, servers, timeouts, options, routes and other lines added, removed
or changed, and the entries of the map and ACL files the config loads
(docs/cli.md, "haguard diff"). Each change is marked appliable at runtime
(server weight, IP address and port, maintenance state, map and ACL
entries: the master CLI command is shown) or as needing a reload.

Without --candidate it compares the config set on disk with what runs:
what 'haguard reload' would change. What runs is the set haguard last
installed, while haproxy's master is still at that generation; after a
reload or restart outside haguard it is unknown, and the files on disk
stand in for it (the report says which).

It changes nothing, takes no lock and runs no check ('haguard reload
--dry-run' checks, plans and diffs).

Exit codes: 0 compared (with --exit-code: and nothing changes); 1 with
--exit-code, something changes; 2 usage error or unreadable candidate.`,
		Example: `  haguard diff --candidate /tmp/new.cfg
  haguard diff                                  # the disk against what runs
  haguard diff --candidate new/ --format json | jq '.changes[] | select(.runtime|not)'`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&o.candidate, "candidate", "", "config file (or a tree mirroring the config set) to compare with what runs")
	f.BoolVar(&o.exitCode, "exit-code", false, "exit 1 when something changes, like git diff --exit-code")
	addUnitFlags(cmd, &o.unit)
	cmd.RunE = a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
		if o.unit.several() {
			return exitUsage, usagef(errors.New("--unit: diff compares one unit's config; name one unit"))
		}
		r, closeFn, err := buildReloader(ctx, cfg, o.unit, a.logger())
		if err != nil {
			return exitUsage, err
		}
		defer closeFn()
		d, err := r.Diff(ctx, reload.Options{Candidate: o.candidate})
		if err != nil {
			return exitUsage, err
		}
		if err := a.writeResult(d, func(w io.Writer) { writeDiffHuman(w, d) }); err != nil {
			return exitBroken, err
		}
		if o.exitCode && len(d.Changes) > 0 {
			return exitNegative, nil
		}
		return exitOK, nil
	})
	return cmd
}

// writeDiffHuman prints the changes section by section: "+" added, "-"
// removed, "~" changed, each with how it would be applied.
func writeDiffHuman(w io.Writer, d reload.Diff) {
	fmt.Fprintf(w, "diff against %s\n", d.Against)
	section := "\x00"
	for _, c := range d.Changes {
		if c.Section != section {
			section = c.Section
			fmt.Fprintf(w, "%s\n", section)
		}
		fmt.Fprintf(w, "  %s %s\n", opMark(c.Op), changeText(c))
		if c.Runtime {
			fmt.Fprintf(w, "      runtime: %s\n", c.How)
		} else {
			fmt.Fprintf(w, "      %s\n", c.How)
		}
	}
	switch n := len(d.Changes); n {
	case 0:
		fmt.Fprintln(w, "no change")
	default:
		fmt.Fprintf(w, "%d change(s): %d appliable at runtime, %d need a reload\n", n, d.Runtime, d.Reload)
	}
}

func opMark(op string) string {
	switch op {
	case validate.OpAdded:
		return "+"
	case validate.OpRemoved:
		return "-"
	}
	return "~"
}

// changeText is "server s1: 10.0.0.1:80 weight 10 -> 10.0.0.1:80 weight
// 20", with where the line is.
func changeText(c validate.Change) string {
	what := c.Name
	if c.Kind != "section" && c.Kind != "directive" && c.Kind != "timeout" && c.Kind != "option" {
		what = c.Kind + " " + c.Name
	}
	var s string
	switch c.Op {
	case validate.OpAdded:
		s = fmt.Sprintf("%s: %s", what, c.After)
	case validate.OpRemoved:
		s = fmt.Sprintf("%s: %s", what, c.Before)
	default:
		s = fmt.Sprintf("%s: %s -> %s", what, c.Before, c.After)
	}
	if c.File != "" && c.Line > 0 {
		s += fmt.Sprintf("  (%s:%d)", c.File, c.Line)
	}
	return s
}
