package config

import (
	"fmt"
	"path"
	"regexp"
	"sort"

	"go.yaml.in/yaml/v3"
)

// Lint tunes the timeout lint (haguard check and the reload's check).
// Nothing is silenced and no severity is changed by default.
type Lint struct {
	// Ignore silences rules, everywhere or in the sections and files
	// that match. A silenced finding is still reported, as suppressed.
	Ignore []LintIgnore `yaml:"ignore"`
	// Severity overrides the severity of a rule's findings: error,
	// warning or info. Only error findings block a reload.
	Severity map[string]string `yaml:"severity"`
}

// LintIgnore silences one rule. In YAML it is either a rule ID alone
// ("HA013") or a mapping with the optional fields.
type LintIgnore struct {
	Rule string `yaml:"rule"`
	// Section is a glob on the finding's section as printed ("backend
	// legacy_*", "defaults"); empty matches any.
	Section string `yaml:"section"`
	// File is a glob on the finding's file path; empty matches any.
	File   string `yaml:"file"`
	Reason string `yaml:"reason"`
}

// UnmarshalYAML accepts "HA013" or {rule, section, file, reason}, with
// the same strictness as the rest of the file (unknown or repeated keys
// are errors).
func (li *LintIgnore) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*li = LintIgnore{Rule: n.Value}
		return nil
	case yaml.MappingNode:
	default:
		return fmt.Errorf("line %d: want a rule ID or a mapping with rule, section, file, reason, got a list", n.Line)
	}
	var out LintIgnore
	fields := map[string]*string{"rule": &out.Rule, "section": &out.Section, "file": &out.File, "reason": &out.Reason}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		dst, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown field %q in lint.ignore[] (known: file, reason, rule, section)", k.Line, k.Value)
		}
		if at, dup := seen[k.Value]; dup {
			return fmt.Errorf("line %d: mapping key %q already defined at line %d", k.Line, k.Value, at)
		}
		seen[k.Value] = k.Line
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: want a string, got a %s", v.Line, map[yaml.Kind]string{yaml.SequenceNode: "list", yaml.MappingNode: "mapping"}[v.Kind])
		}
		*dst = v.Value
	}
	*li = out
	return nil
}

// ruleID is the shape of a rule ID (HA001, DB102, KN201, PA301).
var ruleID = regexp.MustCompile(`^[A-Z]{2}[0-9]{3}$`)

// validate checks the lint block; which IDs exist is the lint's to say
// (validate.NewSuppressor refuses an unknown one).
func (l Lint) validate() []error {
	var errs []error
	for i, ig := range l.Ignore {
		if !ruleID.MatchString(ig.Rule) {
			errs = append(errs, fmt.Errorf("lint.ignore[%d].rule: %q is not a rule ID such as HA013", i, ig.Rule))
		}
		for _, g := range []struct{ name, glob string }{{"section", ig.Section}, {"file", ig.File}} {
			if _, err := path.Match(g.glob, ""); err != nil {
				errs = append(errs, fmt.Errorf("lint.ignore[%d].%s: %q: %w", i, g.name, g.glob, err))
			}
		}
	}
	ids := make([]string, 0, len(l.Severity))
	for id := range l.Severity {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !ruleID.MatchString(id) {
			errs = append(errs, fmt.Errorf("lint.severity: %q is not a rule ID such as HA013", id))
		}
		switch l.Severity[id] {
		case "error", "warning", "info":
		default:
			errs = append(errs, fmt.Errorf("lint.severity.%s: %q is not error, warning or info", id, l.Severity[id]))
		}
	}
	return errs
}
