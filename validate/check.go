package validate

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/haguard/haguard/config"
)

// Options configure Check.
type Options struct {
	// Files are the -f files, in order.
	Files []string
	// HAProxyBin is the haproxy binary for `-c` ("/usr/sbin/haproxy" when empty).
	HAProxyBin string
	// NoSyntax skips `haproxy -c`.
	NoSyntax bool
	// FailOn is the lowest severity that makes the report negative
	// (SevError when empty).
	FailOn Severity
	// Facts feed the rules that need them; nil runs config-only rules.
	Facts *Facts
	// Gather, when set, collects the facts from the parsed config (live
	// DB variables need its servers) and replaces Facts: the files are
	// parsed once, for the facts and the rules alike.
	Gather func(ctx context.Context, cfg *Config) *Facts
	// Registry is the rule set (DefaultRegistry() when nil).
	Registry *Registry
	// Logger gets debug lines; nil discards.
	Logger *slog.Logger

	// Env is haproxy's environment, for the config's variables and for
	// `haproxy -c` alike: for a reload, the unit's Environment= and
	// EnvironmentFile=; nil means this process's environment (the
	// command line). See ReadOptions.
	Env map[string]string
	// MasterWorker and LocalPeer: see ReadOptions.
	MasterWorker bool
	LocalPeer    string
	// Target is the binary the config is read for; nil asks HAProxyBin
	// (through Targets, when set, so a daemon probes a binary once).
	Target  *Target
	Targets *Targets
	// Lint is haguard.yaml's lint block: rules silenced, severities
	// overridden. The config's own `# haguard:ignore` comments always
	// apply.
	Lint config.Lint

	// Policy, when set, runs the PO rules (Facts.Policy) before anything
	// else: a candidate they refuse never reaches `haproxy -c`
	// (Syntax.PolicyRefused). The daemon sets it for every API candidate,
	// the CLI unless haguard.yaml says policy.cli: false.
	Policy *Policy
	// CheckTimeout and CheckMemory bound `haproxy -c` (haguard.yaml
	// haproxy.check_timeout, check_memory_max): 0 is the default
	// (DefaultCheckTimeout, DefaultCheckMemory), a negative memory none.
	CheckTimeout time.Duration
	CheckMemory  int64
	// Untrusted runs `haproxy -c` without root's powers, as CheckUser
	// with only CheckGroups (haproxy.check_user, check_groups), and
	// filters its output so that no file but the candidate shows in it
	// (SyntaxOptions.Untrusted). For API candidates.
	Untrusted   bool
	CheckUser   string
	CheckGroups []string
}

// WithCheckBounds sets the bounds and the check user of haguard.yaml's
// haproxy: section (check_timeout, check_memory_max, check_user,
// check_groups); Untrusted stays as it is.
func (o Options) WithCheckBounds(h config.HAProxy) Options {
	o.CheckTimeout = h.CheckTimeout.D()
	switch {
	case h.CheckMemoryMax.IsUnlimited():
		o.CheckMemory = -1
	default:
		o.CheckMemory = h.CheckMemoryMax.Bytes()
	}
	o.CheckUser, o.CheckGroups = h.CheckUser, h.CheckGroups
	return o
}

func (o Options) syntaxOptions(cfg *Config) SyntaxOptions {
	so := SyntaxOptions{Bin: o.HAProxyBin, Files: o.Files, Env: o.Env, Timeout: o.CheckTimeout, MemoryLimit: o.CheckMemory,
		Untrusted: o.Untrusted, User: o.CheckUser, Groups: o.CheckGroups, Config: cfg}
	if o.Policy != nil {
		so.WorkDir = o.Policy.Refs.WorkDir
	}
	return so
}

// Summary counts findings by severity, and the suppressed ones apart;
// HAProxyErrors and HAProxyWarnings count the ALERT and WARNING lines of
// `haproxy -c` (Syntax.Diagnostics).
type Summary struct {
	Error           int `json:"error"`
	Warning         int `json:"warning"`
	Info            int `json:"info"`
	Suppressed      int `json:"suppressed"`
	HAProxyErrors   int `json:"haproxy_errors"`
	HAProxyWarnings int `json:"haproxy_warnings"`
}

// Report is the result of Check; its JSON is `haguard check --format json`.
type Report struct {
	OK       bool         `json:"ok"`
	Files    []string     `json:"files"`
	Syntax   SyntaxResult `json:"syntax"`
	Findings []Finding    `json:"findings"`
	// Suppressed are the findings an ignore comment or lint.ignore
	// silences, each with its reason; they never fail the check.
	Suppressed []Finding `json:"suppressed"`
	Summary    Summary   `json:"summary"`
	// Target is the haproxy binary the config was read for (its version
	// decides the .if blocks); nil when it could not be asked.
	Target     *Target `json:"target,omitempty"`
	DurationMS int64   `json:"duration_ms"`
	// Config is the parsed model (not in JSON), for callers that go on
	// to probe or reload.
	Config *Config `json:"-"`
}

// Failing returns the findings at or above sev.
func (r Report) Failing(sev Severity) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Severity.Rank() >= sev.Rank() {
			out = append(out, f)
		}
	}
	return out
}

// Check lints the files and runs `haproxy -c` on them concurrently. The
// error is non-nil when the check could not be made: an unreadable file
// (*FileError), haproxy missing or ctx cancelled. A negative verdict is
// Report.OK == false.
func Check(ctx context.Context, opts Options) (Report, error) {
	start := time.Now()
	if len(opts.Files) == 0 {
		return Report{}, fmt.Errorf("check: no configuration file given")
	}
	if opts.FailOn == "" {
		opts.FailOn = SevError
	}
	if opts.FailOn.Rank() == 0 {
		return Report{}, fmt.Errorf("check: fail-on %q is not error, warning or info", opts.FailOn)
	}
	if opts.HAProxyBin == "" {
		opts.HAProxyBin = "/usr/sbin/haproxy"
	}
	if opts.Registry == nil {
		opts.Registry = DefaultRegistry()
	}
	sup, err := NewSuppressor(opts.Lint, opts.Registry)
	if err != nil {
		return Report{}, fmt.Errorf("check: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rep := Report{Files: opts.Files, Findings: []Finding{}, Suppressed: []Finding{}}
	facts := opts.Facts
	var raw *Config
	if opts.Policy != nil || opts.Untrusted {
		// The policy decides before haproxy reads anything, and the
		// untrusted output filter needs the model: read first, every
		// line as written (no variable expanded, every .if branch kept),
		// so that nothing haproxy could see escapes the policy.
		var err error
		if raw, err = ParseWith(ReadOptions{Raw: true}, opts.Files...); err != nil {
			return Report{}, err
		}
	}
	if opts.Policy != nil {
		f := Facts{}
		if facts != nil {
			f = *facts
		}
		f.Policy = opts.Policy
		facts = &f
		if refused, ids := policyOnly(raw, facts); len(refused) > 0 {
			// Every finding, and the refusals even if opts.Registry has no
			// PO rules.
			rep.Config = raw
			rep.Findings = sortFindings(append(opts.Registry.Lint(raw, facts), refused...), raw.Files)
			rep.Syntax = SyntaxResult{Skipped: true, PolicyRefused: true,
				Output: fmt.Sprintf("haproxy -c not run: the candidate policy refused %d line(s) (%s)", len(refused), strings.Join(ids, ", "))}
			return rep.finish(opts, start), nil
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	// The lint waits for the target (a probe of the binary, cached by
	// Targets); haproxy -c does not, so both run at once.
	g.Go(func() error {
		target := opts.Target
		if target == nil {
			ts := opts.Targets
			if ts == nil {
				ts = &Targets{}
			}
			var err error
			if target, err = ts.Get(gctx, opts.HAProxyBin); err != nil {
				// The lint still runs, for an unknown binary (version
				// conditions read as haproxy reads them with no version);
				// haproxy -c, when it runs, says whether the binary works.
				log.Debug("target unknown, conditional blocks read without a version", "err", err)
				target = nil
			}
		}
		rep.Target = target
		t := time.Now()
		ro := ReadOptions{Env: opts.Env, Target: target, MasterWorker: opts.MasterWorker, LocalPeer: opts.LocalPeer}
		cfg, err := ParseWith(ro, opts.Files...)
		if err != nil {
			return err
		}
		rep.Config = cfg
		lf := facts
		if opts.Gather != nil {
			// The facts read the same parse; the policy (set above) stays.
			gathered := opts.Gather(gctx, cfg)
			if facts != nil {
				gathered.Policy = facts.Policy
			}
			lf = gathered
		}
		kept, suppressed := sup.Apply(cfg, opts.Registry.Lint(cfg, lf))
		rep.Findings = append(rep.Findings, kept...)
		rep.Suppressed = append(rep.Suppressed, suppressed...)
		log.Debug("lint done", "lines", cfg.Lines, "findings", len(rep.Findings), "suppressed", len(rep.Suppressed), "took", time.Since(t))
		return nil
	})
	if opts.NoSyntax {
		rep.Syntax = SyntaxResult{OK: true, Skipped: true, Output: "skipped (--no-syntax)"}
	} else {
		g.Go(func() error {
			res, err := RunSyntaxWith(gctx, opts.syntaxOptions(raw))
			rep.Syntax = res
			log.Debug("haproxy -c done", "ok", res.OK, "took_ms", res.DurationMS, "max_rss_kb", res.MaxRSSKB,
				"timed_out", res.TimedOut, "out_of_memory", res.OutOfMemory, "untrusted", res.Untrusted)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Report{}, err
	}
	rep = rep.finish(opts, start)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		// Our own peak apart from haproxy's (docs/benchmarks.md, "check").
		log.Debug("check done", "ok", rep.OK, "duration_ms", rep.DurationMS,
			"self_max_rss_kb", ru.Maxrss, "haproxy_max_rss_kb", rep.Syntax.MaxRSSKB)
	}
	return rep, nil
}

// finish counts the findings and sets the verdict.
func (rep Report) finish(opts Options, start time.Time) Report {
	for _, f := range rep.Findings {
		switch f.Severity {
		case SevError:
			rep.Summary.Error++
		case SevWarning:
			rep.Summary.Warning++
		case SevInfo:
			rep.Summary.Info++
		}
	}
	rep.Summary.Suppressed = len(rep.Suppressed)
	if rep.Syntax.Diagnostics == nil {
		rep.Syntax.Diagnostics = []Diagnostic{}
	}
	rep.Summary.HAProxyErrors, rep.Summary.HAProxyWarnings = CountDiagnostics(rep.Syntax.Diagnostics)
	rep.OK = rep.Syntax.OK && len(rep.Failing(opts.FailOn)) == 0
	rep.DurationMS = time.Since(start).Milliseconds()
	return rep
}

// policyOnly runs the PO rules alone: their findings, and which rules.
func policyOnly(cfg *Config, facts *Facts) ([]Finding, []string) {
	in := &Input{Config: cfg, Facts: facts}
	var out []Finding
	var ids []string
	for _, r := range policyRules() {
		fs := r.Eval(in)
		for i := range fs {
			fs[i] = r.complete(fs[i])
		}
		if len(fs) > 0 {
			out = append(out, fs...)
			ids = append(ids, r.ID)
		}
	}
	return out, ids
}
