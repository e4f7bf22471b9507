package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/validate"
	"github.com/haguard/haguard/validate/facts"
)

type checkOpts struct {
	files      []string
	haproxyBin string
	noSyntax   bool
	failOn     string
	facts      string // none, declared, live; "" = facts.mode in haguard.yaml
}

func (a *app) checkCmd() *cobra.Command {
	var o checkOpts
	cmd := &cobra.Command{
		Use:   "check [-f FILE]...",
		Short: "Lint the HAProxy config (timeouts, checks, keepalive) and run 'haproxy -c' on it",
		Long: `check lints the HAProxy configuration against haguard's rule catalog
(docs/rules.md) and runs 'haproxy -c' on the same files at the same time.

-f may be repeated, as with haproxy; its default is haproxy.configs from
haguard.yaml (/etc/haproxy/haproxy.cfg without one). --facts chooses what
the DB/KN/PA rules get to read (docs/facts.md); its default is facts.mode
from haguard.yaml (declared without one).

Exit codes: 0 syntax OK and no finding at or above --fail-on; 1 findings at
or above --fail-on, or 'haproxy -c' failed; 2 usage error or unreadable file.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	listVarP(f, &o.files, "file", "f", false, "HAProxy config file (repeatable; default: haproxy.configs in haguard.yaml)")
	f.StringVar(&o.haproxyBin, "haproxy-bin", "", "haproxy binary for -c (default: haproxy.binary in haguard.yaml)")
	f.BoolVar(&o.noSyntax, "no-syntax", false, "skip 'haproxy -c'")
	f.StringVar(&o.failOn, "fail-on", "error", "lowest severity that fails the check: error or warning")
	f.StringVar(&o.facts, "facts", "", "facts for the lint: none, declared (haguard.yaml) or live (ask the DBs, read sysctls); default facts.mode in haguard.yaml")
	cmd.RunE = a.exec(func(ctx context.Context) (int, error) { return a.runCheck(ctx, cmd, o) })
	return cmd
}

// runCheck is the body of `haguard check`: resolve the flags against
// haguard.yaml, gather the facts, lint and run `haproxy -c` once.
func (a *app) runCheck(ctx context.Context, cmd *cobra.Command, o checkOpts) (int, error) {
	failOn, err := validate.ParseSeverity(o.failOn)
	if err != nil || failOn == validate.SevInfo {
		return exitUsage, usagef(fmt.Errorf("--fail-on: %q is not error or warning", o.failOn))
	}
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return exitUsage, err
	}
	mode := o.facts
	if mode == "" {
		mode = cfg.Facts.Mode
	}
	switch mode {
	case facts.ModeNone, facts.ModeDeclared, facts.ModeLive:
	default:
		return exitUsage, usagef(fmt.Errorf("--facts: %q is not none, declared or live", mode))
	}
	h, closeFn, err := openHostBestEffort(ctx, cfg, unitFlags{}, a.logger())
	if err != nil {
		return exitUsage, err
	}
	defer closeFn()
	rep, err := h.Check(ctx, host.CheckOptions{Files: o.files, HAProxyBin: o.haproxyBin,
		NoSyntax: o.noSyntax, FailOn: failOn, FactsMode: mode})
	if err != nil {
		var fe *validate.FileError
		if errors.As(err, &fe) {
			return exitUsage, usagef(err)
		}
		return exitUsage, err
	}
	if err := a.writeResult(rep, func(w io.Writer) { writeCheckHuman(w, rep, failOn) }); err != nil {
		return exitBroken, err
	}
	if !rep.OK {
		return exitNegative, nil
	}
	return exitOK, nil
}

// writeCheckHuman prints the report the way `nginx -t` reads: findings
// with their fix, haproxy's own errors and warnings as file:line lines
// (each once), haproxy's verdict, then one summary line that counts
// haproxy's errors too.
func writeCheckHuman(w io.Writer, rep validate.Report, failOn validate.Severity) {
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "%s:%d: %s %s: %s\n", f.File, f.Line, f.Severity, f.Rule, f.Message)
		fmt.Fprintf(w, "    fix: %s\n", f.Fix)
	}
	switch {
	case rep.Syntax.PolicyRefused:
		fmt.Fprintf(w, "haproxy -c: %s\n", rep.Syntax.Output)
	case rep.Syntax.Skipped:
		fmt.Fprintln(w, "haproxy -c: skipped (--no-syntax)")
	default:
		writeDiagnostics(w, rep.Syntax)
		verdict := "syntax is ok"
		if !rep.Syntax.OK {
			verdict = fmt.Sprintf("FAILED (exit %d)", rep.Syntax.ExitCode)
		}
		fmt.Fprintf(w, "%s: %s (%d ms)\n", rep.Syntax.Command, verdict, rep.Syntax.DurationMS)
	}
	fmt.Fprintln(w, checkSummary(rep, failOn))
}

// writeDiagnostics prints haproxy's errors and warnings, each once, as
// file:line: severity: message; when it failed without saying why in such
// a line (a timeout, a binary that does not run), its other output lines
// instead (NOTICE lines left out).
func writeDiagnostics(w io.Writer, s validate.SyntaxResult) {
	for _, d := range s.Diagnostics {
		fmt.Fprintln(w, d.String())
		if d.Detail != "" {
			fmt.Fprintf(w, "    %s\n", d.Detail)
		}
	}
	if s.OK || len(s.Diagnostics) > 0 {
		return
	}
	for _, l := range strings.Split(strings.TrimRight(s.Output, "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "[NOTICE]") {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}

// checkSummary is the last line: the verdict, then what haproxy -c found
// when it refused the files (so that a refusal never reads "0 error(s)"),
// then the lint's counts.
func checkSummary(rep validate.Report, failOn validate.Severity) string {
	sum := rep.Summary
	lint := fmt.Sprintf("%d error(s), %d warning(s), %d info", sum.Error, sum.Warning, sum.Info)
	if n := sum.Suppressed; n > 0 {
		lint += fmt.Sprintf(", %d suppressed", n)
	}
	result := "ok"
	if !rep.OK {
		result = "FAILED"
	}
	head := fmt.Sprintf("haguard check %s: %s", result, lint)
	switch s := rep.Syntax; {
	case !s.OK && !s.Skipped && sum.HAProxyErrors > 0:
		head = fmt.Sprintf("haguard check %s: haproxy -c found %d error(s); lint: %s", result, sum.HAProxyErrors, lint)
	case !s.OK && s.TimedOut:
		head = fmt.Sprintf("haguard check %s: haproxy -c timed out; lint: %s", result, lint)
	case !s.OK && !s.Skipped:
		head = fmt.Sprintf("haguard check %s: haproxy -c failed (exit %d); lint: %s", result, s.ExitCode, lint)
	case sum.HAProxyWarnings > 0:
		head += fmt.Sprintf("; haproxy -c: %d warning(s)", sum.HAProxyWarnings)
	}
	return fmt.Sprintf("%s; %d file(s); fail-on %s; %d ms", head, len(rep.Files), failOn, rep.DurationMS)
}
