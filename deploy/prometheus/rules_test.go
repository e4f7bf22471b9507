// Package prometheus holds no code: its tests check the alert rules and
// the Grafana dashboard in this directory against promtool (Debian package
// prometheus, installed by make deps) and against the metrics that
// haguard serve really registers.
package prometheus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/internal/metricstest"
)

const (
	rulesFile     = "haguard.rules.yml"
	rulesTestFile = "haguard.rules.test.yml"
	dashboardFile = "haguard.dashboard.json"
)

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs promtool (make deps); -short runs unit tests only")
	}
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool: %v (Debian package prometheus; make deps installs it)", err)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRulesCheck(t *testing.T) {
	out := promtool(t, "check", "rules", rulesFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules:\n%s", out)
	}
}

// TestRulesFire runs the rules' own unit tests: each alert fires on the
// series that should fire it, after its `for`, and not on the others.
func TestRulesFire(t *testing.T) {
	out := promtool(t, "test", "rules", rulesTestFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// dashboardExprs returns every PromQL expression in the dashboard, with
// Grafana's variables replaced by values PromQL accepts.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "6h", "$instance", ".*")
	var exprs []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue // a row only groups the panels below it
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, vars.Replace(tg.Expr))
		}
	}
	for _, a := range d.Annotations.List {
		exprs = append(exprs, vars.Replace(a.Expr))
	}
	return exprs
}

// TestDashboardQueriesParse hands every dashboard query to promtool as a
// recording rule, so that PromQL syntax errors fail here, not in Grafana.
func TestDashboardQueriesParse(t *testing.T) {
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range dashboardExprs(t) {
		q, _ := json.Marshal(e) // a JSON string is a valid YAML scalar
		fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", path)
}

var metricRef = regexp.MustCompile(`\bhaguard_[a-z_]+`)

// TestMetricNamesExist ties the rules and the dashboard to the metrics the
// api package registers: a renamed metric breaks this test, not an alert
// that silently never fires. It also checks that every metric is shown.
func TestMetricNamesExist(t *testing.T) {
	m := api.NewMetrics()
	m.SetConfig("0123abcd") // haguard_config_info has a series only once a config is known
	real := map[string]bool{}
	for name := range metricstest.Gather(t, m) {
		if strings.HasPrefix(name, "haguard_") {
			real[name] = true
		}
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string][]string{}
	for _, m := range metricRef.FindAllString(string(rules), -1) {
		used[base(m)] = append(used[base(m)], rulesFile)
	}
	shown := map[string]bool{}
	for _, e := range dashboardExprs(t) {
		for _, m := range metricRef.FindAllString(e, -1) {
			used[base(m)] = append(used[base(m)], dashboardFile)
			shown[base(m)] = true
		}
	}
	for m, where := range used {
		if !real[m] {
			t.Errorf("%s uses %s, which haguard serve does not export", where[0], m)
		}
	}
	var missing []string
	for m := range real {
		if !shown[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard shows none of %v", missing)
	}
}

// TestScrapeLintsClean hands a scrape of haguard serve's metrics, with
// every kind of series filled in, to `promtool check metrics`, the
// exposition linter Prometheus ships: names, help, types, units.
func TestScrapeLintsClean(t *testing.T) {
	m := api.NewMetrics()
	m.SetConfig(strings.Repeat("ab", 32))
	m.ObserveReload(api.Outcome{Result: api.ResultOK, Duration: 1500 * time.Millisecond, Probes: api.ProbeTotals{OK: 20}})
	m.ObserveFindings(map[string]int{"warning": 1})
	m.ObserveSweep(api.SweepReport{At: time.Now(), Counts: map[string]int{"current": 2}})
	var b bytes.Buffer
	if err := m.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	promtool(t, "--version") // fails loudly when promtool is missing
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// base strips the series suffixes of histograms and summaries.
func base(m string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if strings.HasSuffix(m, s) && strings.HasSuffix(strings.TrimSuffix(m, s), "_seconds") {
			return strings.TrimSuffix(m, s)
		}
	}
	return m
}

var recordedRef = regexp.MustCompile(`\bhaguard:[a-z_]+`)

// TestDashboardRecordedSeriesExist: the dashboard's fleet panels read
// series recorded by haguard.rules.yml; a renamed rule breaks this test,
// not a panel that silently shows nothing.
func TestDashboardRecordedSeriesExist(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*- record: (\S+)$`).FindAllStringSubmatch(string(rules), -1) {
		recorded[m[1]] = true
	}
	if len(recorded) == 0 {
		t.Fatalf("%s records nothing", rulesFile)
	}
	for _, e := range dashboardExprs(t) {
		for _, m := range recordedRef.FindAllString(e, -1) {
			if !recorded[m] {
				t.Errorf("%s reads %s, which %s does not record", dashboardFile, m, rulesFile)
			}
		}
	}
}

// TestConfigInfoLabels pins what the fleet rules assume of
// haguard_config_info: its only label is sha256, so every other label of
// a series is a target label, and a fleet is every target that shares all
// of them but instance (`count without (instance)`, then `count without
// (sha256)`). A new label (say, a config-set identity) must be added to
// the haguard-fleet rules' `without` lists, or it would split a fleet.
func TestConfigInfoLabels(t *testing.T) {
	m := api.NewMetrics()
	m.SetConfig("0123abcd")
	for _, mf := range metricstest.Gather(t, m) {
		if mf.GetName() != "haguard_config_info" {
			continue
		}
		var labels []string
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		if strings.Join(labels, ",") != "sha256" {
			t.Fatalf("haguard_config_info has labels %v; the haguard-fleet rules in %s assume [sha256]", labels, rulesFile)
		}
		return
	}
	t.Fatalf("haguard serve exports no haguard_config_info")
}

// TestEveryAlertIsTested: each alert of the rules file has at least one
// promtool case that expects it to fire.
func TestEveryAlertIsTested(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	fired := map[string]bool{}
	// A case expects alerts when exp_alerts is followed by a list item.
	for _, m := range regexp.MustCompile(`alertname: (\w+)\s+exp_alerts:\s*\n\s+- `).FindAllStringSubmatch(string(tests), -1) {
		fired[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\w+)$`).FindAllStringSubmatch(string(rules), -1) {
		if !fired[m[1]] {
			t.Errorf("%s: no case expects %s to fire", rulesTestFile, m[1])
		}
	}
}
