package validate

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/haguard/haguard/config"
)

// Suppression: a finding can be silenced by the config itself, with a
// comment, or by haguard.yaml's lint block. A silenced finding is not
// dropped: it moves to Report.Suppressed with the reason, and is counted.
//
//	server db1 10.0.0.1:3306 check   # haguard:ignore HA009 checks are slow on purpose
//	backend legacy                   # haguard:ignore HA013,HA015 the app pings every 30s
//
// A `# haguard:ignore RULE[,RULE...] [reason]` comment applies to:
//   - its own line, when it ends a directive;
//   - the whole section, when it ends the section's header line or sits
//     on a comment line before the section's first directive;
//   - the next directive, when it sits on a comment line further down.
//
// A finding belongs to a section when its line is there, or when it is
// about that section (Finding.About: the proxy a defaults value decides).

// Suppression says why a finding is silenced.
type Suppression struct {
	// By is "comment" (a # haguard:ignore in the config) or "config"
	// (lint.ignore in haguard.yaml).
	By     string `json:"by"`
	Reason string `json:"reason"`
	// File and Line are where the comment is (By == "comment").
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// IgnoreComment is one `# haguard:ignore` comment of the config.
type IgnoreComment struct {
	Pos    Pos
	Rules  []string
	Reason string
	// Section is set when the comment covers a whole section ("backend
	// db"); otherwise it covers the line Target.
	Section string
	Target  Pos
}

// parseIgnore reads "haguard:ignore RULE[,RULE] reason..." out of a
// comment; ok is false when the comment holds none.
func parseIgnore(comment string) (rules []string, reason string, ok bool) {
	k := strings.Index(comment, "haguard:ignore")
	if k < 0 {
		return nil, "", false
	}
	rest := strings.Fields(comment[k+len("haguard:ignore"):])
	if len(rest) == 0 {
		return nil, "", true
	}
	for _, r := range strings.Split(rest[0], ",") {
		if r = strings.TrimSpace(r); r != "" {
			rules = append(rules, strings.ToUpper(r))
		}
	}
	return rules, strings.Join(rest[1:], " "), true
}

// Suppressor applies haguard.yaml's lint block and the config's
// ignore comments to a list of findings.
type Suppressor struct {
	ignores  []config.LintIgnore
	severity map[string]Severity
}

// NewSuppressor checks l against the rules of reg (an unknown rule ID is
// an error that names it, as a typo would silently silence nothing).
func NewSuppressor(l config.Lint, reg *Registry) (*Suppressor, error) {
	known := map[string]bool{}
	for _, r := range reg.Rules() {
		known[r.ID] = true
	}
	s := &Suppressor{ignores: l.Ignore, severity: map[string]Severity{}}
	for i, ig := range l.Ignore {
		if !known[ig.Rule] {
			return nil, fmt.Errorf("lint.ignore[%d]: no rule %s (haguard check lists the rules in docs/rules.md)", i, ig.Rule)
		}
	}
	for id, sev := range l.Severity {
		if !known[id] {
			return nil, fmt.Errorf("lint.severity: no rule %s", id)
		}
		v, err := ParseSeverity(sev)
		if err != nil {
			return nil, fmt.Errorf("lint.severity.%s: %w", id, err)
		}
		s.severity[id] = v
	}
	return s, nil
}

// Apply sets the overridden severities, then splits fs into the findings
// that stand and the suppressed ones (each with its Suppression). cfg
// holds the ignore comments; nil s applies the comments only.
func (s *Suppressor) Apply(cfg *Config, fs []Finding) (kept, suppressed []Finding) {
	kept = make([]Finding, 0, len(fs))
	for _, f := range fs {
		if s != nil {
			if sev, ok := s.severity[f.Rule]; ok {
				f.Severity = sev
			}
		}
		if why := s.why(cfg, f); why != nil {
			f.Suppressed = why
			suppressed = append(suppressed, f)
			continue
		}
		kept = append(kept, f)
	}
	return kept, suppressed
}

func (s *Suppressor) why(cfg *Config, f Finding) *Suppression {
	if cfg != nil {
		for _, ic := range cfg.Ignores {
			if !slices.Contains(ic.Rules, f.Rule) && !slices.Contains(ic.Rules, "ALL") {
				continue
			}
			if ic.Section != "" && f.inSection(func(sec string) bool { return sec == ic.Section }) ||
				ic.Section == "" && f.File == ic.Target.File && f.Line == ic.Target.Line {
				return &Suppression{By: "comment", Reason: ic.Reason, File: ic.Pos.File, Line: ic.Pos.Line}
			}
		}
	}
	if s == nil {
		return nil
	}
	for _, ig := range s.ignores {
		if ig.Rule != f.Rule {
			continue
		}
		if ig.File != "" {
			if ok, _ := path.Match(ig.File, f.File); !ok {
				continue
			}
		}
		if ig.Section != "" && !f.inSection(func(sec string) bool { ok, _ := path.Match(ig.Section, sec); return ok }) {
			continue
		}
		return &Suppression{By: "config", Reason: ig.Reason}
	}
	return nil
}

// inSection reports whether match accepts the finding's section or one
// it is about.
func (f Finding) inSection(match func(string) bool) bool {
	if match(f.Section) {
		return true
	}
	for _, a := range f.About {
		if match(a) {
			return true
		}
	}
	return false
}
