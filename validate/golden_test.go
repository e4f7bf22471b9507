package validate

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/haguard/haguard/config"
)

var update = flag.Bool("update", false, "rewrite testdata/check/*.golden from the current findings (review the diff by hand)")

const goldenDir = "../testdata/check"

// goldenEnv is the environment the goldens are read in: none, so that
// they read the same on every machine.
var goldenEnv = map[string]string{}

func parseGolden(path string) (*Config, error) {
	// A policy case is read as the policy reads a candidate (ReadOptions.Raw).
	raw := strings.HasPrefix(filepath.Base(path), "po_")
	return ParseWith(ReadOptions{Env: goldenEnv, LocalPeer: "golden", Raw: raw}, path)
}

// formatGolden renders findings independent of the directory the test runs in.
func formatGolden(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s:%d: %s %s [%s]: %s\n    fix: %s\n", filepath.Base(f.File), f.Line, f.Severity, f.Rule, f.Section, f.Message, f.Fix)
	}
	if b.Len() == 0 {
		return "(no findings)\n"
	}
	return b.String()
}

// goldenFacts loads <case>.yaml (a haguard.yaml) next to the config, if any.
func goldenFacts(t *testing.T, cfgPath string) *Facts {
	t.Helper()
	y := strings.TrimSuffix(cfgPath, ".cfg") + ".yaml"
	if _, err := os.Stat(y); err != nil {
		return nil
	}
	c, err := config.Load(y, true)
	if err != nil {
		t.Fatalf("load %s: %v", y, err)
	}
	f := &Facts{Backends: c.Facts.Backends, Generations: &c.Generations}
	if len(c.Path.Middleboxes) > 0 {
		f.Path = &c.Path
	}
	if strings.HasPrefix(filepath.Base(cfgPath), "po_") {
		// A candidate checked against the policy of its haguard.yaml, to
		// be installed as /etc/haproxy/haproxy.cfg, with no running config.
		f.Policy = NewPolicy(c.Policy, []string{"/etc/haproxy/haproxy.cfg"}, nil)
	}
	return f
}

func TestGolden(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join(goldenDir, "*.cfg"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden configs in %s: %v", goldenDir, err)
	}
	reg := DefaultRegistry()
	for _, cfgPath := range cases {
		name := strings.TrimSuffix(filepath.Base(cfgPath), ".cfg")
		t.Run(name, func(t *testing.T) {
			cfg, err := parseGolden(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			got := formatGolden(reg.Lint(cfg, goldenFacts(t, cfgPath)))
			goldenPath := strings.TrimSuffix(cfgPath, ".cfg") + ".golden"
			if *update {
				if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test ./validate -run TestGolden -update, then review)", err)
			}
			if got != string(want) {
				t.Errorf("findings differ from %s\n--- got\n%s--- want\n%s", goldenPath, got, want)
			}
		})
	}
}

// TestGoldenRuleCoverage proves every config-only rule has a golden
// config that triggers it, and that seed 003's final config has no error.
func TestGoldenRuleCoverage(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(goldenDir, "*.cfg"))
	seen := map[string]bool{}
	reg := DefaultRegistry()
	for _, c := range cases {
		cfg, err := parseGolden(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range reg.Lint(cfg, goldenFacts(t, c)) {
			seen[f.Rule] = true
			if strings.HasPrefix(filepath.Base(c), "seed003_final") && f.Severity == SevError {
				t.Errorf("seed 003's final config must give no error, got %+v", f)
			}
		}
	}
	for _, r := range reg.Rules() {
		if r.Needs == NeedsNone && !seen[r.ID] {
			t.Errorf("rule %s has no golden config that triggers it", r.ID)
		}
	}
}

// internalSymbols are RULES.md's names for derived quantities: readers of
// a finding do not know them.
var internalSymbols = regexp.MustCompile(`\b(HA|POOL|PATH|KA)_(idle|first|dead)|unACKed`)

// TestMessagesUsePlainWords: no finding of any golden config speaks
// RULES.md's jargon, and the ones about a PostgreSQL backend do not cite
// MySQL's errors or variables.
func TestMessagesUsePlainWords(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(goldenDir, "*.cfg"))
	reg := DefaultRegistry()
	pg := 0
	for _, c := range cases {
		cfg, err := parseGolden(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range reg.Lint(cfg, goldenFacts(t, c)) {
			if m := internalSymbols.FindString(f.Message + " " + f.Fix); m != "" {
				t.Errorf("%s:%d %s speaks jargon (%s): %s", filepath.Base(c), f.Line, f.Rule, m, f.Message)
			}
			if strings.Contains(f.Message, "PostgreSQL") {
				pg++
				for _, mysql := range []string{"MySQL", "2006", "2013", "wait_timeout"} {
					if strings.Contains(f.Message+f.Fix, mysql) {
						t.Errorf("%s:%d %s on a PostgreSQL backend cites %s: %s / %s", filepath.Base(c), f.Line, f.Rule, mysql, f.Message, f.Fix)
					}
				}
			}
		}
	}
	if pg == 0 {
		t.Error("no golden finding about a PostgreSQL backend")
	}
}
