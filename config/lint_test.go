package config

import (
	"strings"
	"testing"
)

func TestLintBlock(t *testing.T) {
	c, err := Parse([]byte(`lint:
  ignore:
    - HA016
    - rule: HA013
      section: "backend legacy_*"
      file: /etc/haproxy/conf.d/*.cfg
      reason: the app pings every 30s
  severity:
    HA010: info
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []LintIgnore{{Rule: "HA016"}, {Rule: "HA013", Section: "backend legacy_*", File: "/etc/haproxy/conf.d/*.cfg", Reason: "the app pings every 30s"}}
	if len(c.Lint.Ignore) != 2 || c.Lint.Ignore[0] != want[0] || c.Lint.Ignore[1] != want[1] {
		t.Errorf("ignore = %+v", c.Lint.Ignore)
	}
	if c.Lint.Severity["HA010"] != "info" {
		t.Errorf("severity = %v", c.Lint.Severity)
	}
	if d := Default().Lint; len(d.Ignore) != 0 || len(d.Severity) != 0 {
		t.Errorf("the default lint block silences something: %+v", d)
	}
}

// TestLintBlockStrict: every mistake is an error that names its place.
func TestLintBlockStrict(t *testing.T) {
	for yaml, want := range map[string]string{
		"lint:\n  ignore:\n    - {rule: HA013, sektion: x}\n":     `line 3: unknown field "sektion" in lint.ignore[] (known: file, reason, rule, section)`,
		"lint:\n  ignore:\n    - {rule: HA013, rule: HA014}\n":    `line 3: mapping key "rule" already defined at line 3`,
		"lint:\n  ignore:\n    - ha13\n":                          `lint.ignore[0].rule: "ha13" is not a rule ID`,
		"lint:\n  ignore:\n    - {rule: HA013, section: \"[\"}\n": "lint.ignore[0].section",
		"lint:\n  ignore:\n    - [HA013]\n":                       "line 3: want a rule ID or a mapping",
		"lint:\n  severity:\n    HA010: fatal\n":                  `lint.severity.HA010: "fatal" is not error, warning or info`,
		"lint:\n  severity:\n    timeouts: info\n":                `lint.severity: "timeouts" is not a rule ID`,
		"lint:\n  ignored: []\n":                                  `line 2: unknown field "ignored" in lint (did you mean ignore?)`,
	} {
		_, err := Parse([]byte(yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one with %q", yaml, err, want)
		}
	}
}
