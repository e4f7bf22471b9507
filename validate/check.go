package validate

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
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
}

// Summary counts findings by severity.
type Summary struct {
	Error   int `json:"error"`
	Warning int `json:"warning"`
	Info    int `json:"info"`
}

// Report is the result of Check; its JSON is `haguard check --format json`.
type Report struct {
	OK         bool         `json:"ok"`
	Files      []string     `json:"files"`
	Syntax     SyntaxResult `json:"syntax"`
	Findings   []Finding    `json:"findings"`
	Summary    Summary      `json:"summary"`
	DurationMS int64        `json:"duration_ms"`
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
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rep := Report{Files: opts.Files, Findings: []Finding{}}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		t := time.Now()
		cfg, err := Parse(opts.Files...)
		if err != nil {
			return err
		}
		rep.Config = cfg
		facts := opts.Facts
		if opts.Gather != nil {
			facts = opts.Gather(gctx, cfg)
		}
		if fs := opts.Registry.Lint(cfg, facts); fs != nil {
			rep.Findings = fs
		}
		log.Debug("lint done", "lines", cfg.Lines, "findings", len(rep.Findings), "took", time.Since(t))
		return nil
	})
	if opts.NoSyntax {
		rep.Syntax = SyntaxResult{OK: true, Skipped: true, Output: "skipped (--no-syntax)"}
	} else {
		g.Go(func() error {
			res, err := RunSyntax(gctx, opts.HAProxyBin, opts.Files)
			rep.Syntax = res
			log.Debug("haproxy -c done", "ok", res.OK, "took_ms", res.DurationMS, "max_rss_kb", res.MaxRSSKB)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Report{}, err
	}
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
	rep.OK = rep.Syntax.OK && len(rep.Failing(opts.FailOn)) == 0
	rep.DurationMS = time.Since(start).Milliseconds()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		// Our own peak apart from haproxy's (docs/benchmarks.md, "check").
		log.Debug("check done", "ok", rep.OK, "duration_ms", rep.DurationMS,
			"self_max_rss_kb", ru.Maxrss, "haproxy_max_rss_kb", rep.Syntax.MaxRSSKB)
	}
	return rep, nil
}
