package validate

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/haguard/haguard/config"
)

// suppressCfg has a finding on a directive line (HA001 on timeout client),
// findings on a defaults line that decide two proxies (HA006, HA013), and
// ignore comments of each kind.
const suppressCfg = `global
    hard-stop-after 30m
defaults
    mode tcp
    timeout connect 5s
    timeout client 50s
    timeout server 50s
frontend app_in
    bind 127.0.0.1:13310
    default_backend db
backend db          # haguard:ignore HA006 the app reconnects; cut idle sessions are fine
    server d1 10.0.0.1:3306 check
listen other
    # haguard:ignore HA013,HA015 nothing between haproxy and this database
    bind 127.0.0.1:13311
    timeout client 1h
    timeout server 1h
    # haguard:ignore HA001 copied from the vendor's sample
    timeout check 30
    server o1 10.0.0.2:3306 check inter 1s   # haguard:ignore HA009
`

func lintSuppressed(t *testing.T, l config.Lint) (kept, suppressed []Finding) {
	t.Helper()
	cfg, err := ParseReaderWith(ReadOptions{Env: map[string]string{}}, "s.cfg", strings.NewReader(suppressCfg))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSuppressor(l, DefaultRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return s.Apply(cfg, DefaultRegistry().Lint(cfg, nil))
}

func rulesOf(fs []Finding) map[string]int {
	out := map[string]int{}
	for _, f := range fs {
		out[f.Rule+" "+f.Section]++
	}
	return out
}

func TestIgnoreComments(t *testing.T) {
	kept, suppressed := lintSuppressed(t, config.Lint{})
	got := rulesOf(suppressed)
	for _, want := range []string{
		"HA006 defaults",     // on a defaults line, about backend db: the section comment covers it
		"HA013 listen other", // a comment line before the first directive: the whole section
		"HA001 listen other", // a comment line further down: the next directive
	} {
		if got[want] == 0 {
			t.Errorf("%s not suppressed; suppressed %v, kept %v", want, got, rulesOf(kept))
		}
	}
	for _, f := range suppressed {
		if f.Suppressed == nil || f.Suppressed.By != "comment" || f.Suppressed.Line == 0 {
			t.Errorf("suppression without its comment: %+v", f)
		}
		if f.Rule == "HA006" && f.Suppressed.Reason != "the app reconnects; cut idle sessions are fine" {
			t.Errorf("reason %q", f.Suppressed.Reason)
		}
	}
	for _, f := range kept {
		if f.Rule == "HA013" && f.Section == "listen other" || f.Rule == "HA006" && strings.Contains(f.Message, "backend 'db'") {
			t.Errorf("finding left in spite of its ignore comment: %+v", f)
		}
	}
}

func TestLintConfigIgnoreAndSeverity(t *testing.T) {
	l := config.Lint{
		Ignore: []config.LintIgnore{
			{Rule: "HA010"},
			{Rule: "HA005", Section: "frontend app_*", Reason: "split on purpose"},
			{Rule: "HA016", File: "/nowhere/*.cfg"}, // another file: does not apply
		},
		Severity: map[string]string{"HA006": "info", "HA009": "warning"},
	}
	kept, suppressed := lintSuppressed(t, l)
	for _, f := range suppressed {
		if f.Rule == "HA010" || f.Rule == "HA005" {
			if f.Suppressed.By != "config" {
				t.Errorf("%s suppressed by %q", f.Rule, f.Suppressed.By)
			}
		}
	}
	got := rulesOf(suppressed)
	if got["HA010 global"] == 0 {
		t.Errorf("HA010 not silenced by lint.ignore: %v", got)
	}
	for _, f := range kept {
		switch f.Rule {
		case "HA010":
			t.Errorf("HA010 left: %+v", f)
		case "HA006":
			if f.Severity != SevInfo {
				t.Errorf("HA006 severity %s, want info", f.Severity)
			}
		}
	}
	if _, err := NewSuppressor(config.Lint{Ignore: []config.LintIgnore{{Rule: "HA999"}}}, DefaultRegistry()); err == nil || !strings.Contains(err.Error(), "HA999") {
		t.Errorf("unknown rule accepted: %v", err)
	}
}

// TestCheckReportsSuppressed: Check moves silenced findings to
// Report.Suppressed, counts them, and shows their reason in JSON.
func TestCheckReportsSuppressed(t *testing.T) {
	path := writeFile(t, t.TempDir(), "s.cfg", suppressCfg)
	rep, err := Check(context.Background(), Options{Files: []string{path}, NoSyntax: true, Env: map[string]string{},
		Target: &Target{Version: "2.6.12"}, Lint: config.Lint{Ignore: []config.LintIgnore{{Rule: "HA010", Reason: "reloads are rare"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Suppressed != len(rep.Suppressed) || len(rep.Suppressed) < 4 {
		t.Fatalf("summary %+v, %d suppressed", rep.Summary, len(rep.Suppressed))
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"suppressed":{"by":"config","reason":"reloads are rare"}`, `"suppressed":{"by":"comment","reason":"the app reconnects; cut idle sessions are fine","file":`, `"summary":{"error":`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	for _, f := range rep.Findings {
		if f.Suppressed != nil {
			t.Errorf("a suppressed finding among the findings: %+v", f)
		}
	}
}

func TestParseIgnore(t *testing.T) {
	for c, want := range map[string]string{
		"haguard:ignore HA013 the app pings":   "HA013|the app pings",
		"x haguard:ignore ha013,HA015":         "HA013,HA015|",
		"haguard:ignore":                       "|",
		"haguard:db some other annotation":     "none",
		"keep this # haguard:ignore HA001 why": "HA001|why",
	} {
		rules, reason, ok := parseIgnore(c)
		got := strings.Join(rules, ",") + "|" + reason
		if !ok {
			got = "none"
		}
		if got != want {
			t.Errorf("parseIgnore(%q) = %q, want %q", c, got, want)
		}
	}
}

// TestNewFindings: a finding the running config already has is not new,
// even when lines moved and values changed; a second copy, another
// section or another subject is.
func TestNewFindings(t *testing.T) {
	running := `defaults
    mode tcp
    timeout connect 5s
    timeout client 50s
    timeout server 50s
frontend app_in
    bind 127.0.0.1:13320
    default_backend db
backend db
    server d1 10.0.0.1:3306 check
`
	// The candidate adds lines above, tunes the timers (still too short
	// for a DB), and adds a second DB route.
	candidate := `# a comment moves every line down
global
    hard-stop-after 30m
defaults
    mode tcp
    timeout connect 5s
    timeout client 40s
    timeout server 40s
frontend app_in
    bind 127.0.0.1:13320
    default_backend db
frontend reports_in
    bind 127.0.0.1:13321
    default_backend db
backend db
    server d1 10.0.0.1:3306 check
    server d2 10.0.0.2:3306 check
`
	lint := func(text string) []Finding {
		cfg, err := ParseReaderWith(ReadOptions{Env: map[string]string{}}, "c.cfg", strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return DefaultRegistry().Lint(cfg, nil)
	}
	news := NewFindings(lint(candidate), lint(running))
	var got []string
	for _, f := range news {
		got = append(got, f.Rule+" "+f.Key)
	}
	want := "HA006 frontend 'reports_in' → backend 'db'"
	if len(news) != 1 || got[0] != want {
		t.Errorf("new findings %q, want only %q", got, want)
	}
	if n := NewFindings(lint(running), lint(running)); len(n) != 0 {
		t.Errorf("the same config has new findings: %+v", n)
	}
	dup := append(lint(running), lint(running)...)
	if n := NewFindings(dup, lint(running)); len(n) != len(lint(running)) {
		t.Errorf("a second copy of each finding should be new: %d", len(n))
	}
}
