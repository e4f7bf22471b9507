package validate

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
)

// The corpus: real configs from public repositories (testdata/corpus,
// sources in manifest.json), every finding of the lint judged by hand in
// review.tsv. It keeps the lint honest in three ways:
//
//   - TestCorpusReview: the findings are exactly the judged ones (a new or
//     vanished finding fails until review.tsv is updated and judged);
//   - TestCorpusHAProxy: haproxy -c's verdict on each config is the one
//     the manifest records, and a config haproxy accepts (or refuses only
//     for want of this host's DNS names and files) has no error finding
//     that was not judged a true positive;
//   - TestCorpusMeasurement: docs/rules.md publishes the precision the
//     judgements give.
//
// After changing a rule:
//
//	go test ./validate -run 'TestCorpus' -update-corpus   # rewrite review.tsv, manifest, docs table
//	git diff validate/testdata/corpus docs/rules.md        # judge every line marked "?"

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/corpus/review.tsv, the manifest's haproxy -c verdicts and the docs/rules.md measurement (then judge every \"?\" by hand)")

const corpusDir = "testdata/corpus"

// corpusEntry is one config of manifest.json.
type corpusEntry struct {
	File   string `json:"file"`
	Repo   string `json:"repo"`
	Path   string `json:"path"`
	Commit string `json:"commit"`
	Kind   string `json:"kind"`
	// Env is the environment its deployment gives haproxy (from the
	// repository's compose file or unit), when the config reads variables.
	Env map[string]string `json:"env,omitempty"`
	// HAProxyC is what haproxy 2.6 -c says: "accepted"; "host" (refused
	// only because this host lacks the config's DNS names or files: certs,
	// maps, Lua); or "refused", with the first alert in HAProxyCWhy.
	HAProxyC    string `json:"haproxy_c"`
	HAProxyCWhy string `json:"haproxy_c_why,omitempty"`
}

type corpusManifest struct {
	Configs []corpusEntry `json:"configs"`
}

func loadManifest(t *testing.T) corpusManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m corpusManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(m.Configs) < 40 {
		t.Fatalf("the corpus has %d configs, want at least 40", len(m.Configs))
	}
	for _, c := range m.Configs {
		if c.Repo == "" || c.Path == "" || len(c.Commit) != 40 {
			t.Errorf("%s: source incomplete (repo, path, 40-hex commit): %+v", c.File, c)
		}
	}
	return m
}

func saveManifest(t *testing.T, m corpusManifest) {
	t.Helper()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corpusDir, "manifest.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// corpusTarget is the binary the corpus is read for, fixed so that the
// findings do not depend on the machine: Debian 12's haproxy.
var corpusTarget = &Target{
	Version:  "2.6.12-1+deb12u4",
	Features: "+EPOLL -KQUEUE +NETFILTER -PCRE +PCRE2 +PCRE2_JIT +POLL +THREAD +BACKTRACE -STATIC_PCRE +TPROXY +LINUX_TPROXY +LINUX_SPLICE +LIBCRYPT +CRYPT_H +GETADDRINFO +OPENSSL +LUA +ACCEPT4 +SLZ +PROMEX +OT +SYSTEMD",
	Presets:  map[string]string{"HAPROXY_STARTUP_VERSION": "2.6.12-1+deb12u4"},
	Pollers:  []string{"epoll", "poll"},
}

func lintCorpus(t *testing.T, c corpusEntry) []Finding {
	t.Helper()
	env := c.Env
	if env == nil {
		env = map[string]string{}
	}
	path := filepath.Join(corpusDir, c.File)
	cfg, err := ParseWith(ReadOptions{Env: env, Target: corpusTarget, LocalPeer: "corpus"}, path)
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := (*Suppressor)(nil).Apply(cfg, DefaultRegistry().Lint(cfg, nil))
	return kept
}

// judgement is one line of review.tsv.
type judgement struct {
	file     string
	line     int
	rule     string
	severity string
	key      string
	verdict  string // "tp" (true positive), "noise", or "?" (not judged yet)
	why      string
	message  string
}

func (j judgement) id() string {
	return fmt.Sprintf("%s:%d|%s|%s|%s", j.file, j.line, j.rule, j.severity, j.key)
}

const reviewHeader = "# file:line\trule\tseverity\tkey\tverdict\twhy\tmessage\n" +
	"# One line per finding of the lint on the corpus, judged by hand: verdict tp (true positive: the\n" +
	"# finding is right and worth acting on for this config) or noise (wrong, or not worth a line).\n" +
	"# Regenerate with: go test ./validate -run TestCorpus -update-corpus (keeps the verdicts).\n"

func loadReview(t *testing.T) map[string]judgement {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "review.tsv"))
	if os.IsNotExist(err) {
		return map[string]judgement{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]judgement{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		p := strings.Split(l, "\t")
		if len(p) != 7 {
			t.Fatalf("review.tsv:%d: %d columns, want 7", n, len(p))
		}
		file, line, _ := strings.Cut(p[0], ":")
		ln, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("review.tsv:%d: %q is not file:line", n, p[0])
		}
		j := judgement{file: file, line: ln, rule: p[1], severity: p[2], key: p[3], verdict: p[4], why: p[5], message: p[6]}
		switch j.verdict {
		case "tp", "noise", "?":
		default:
			t.Fatalf("review.tsv:%d: verdict %q is not tp, noise or ?", n, j.verdict)
		}
		out[j.id()] = j
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func tsvSafe(s string) string { return strings.NewReplacer("\t", " ", "\n", " ").Replace(s) }

func saveReview(t *testing.T, js []judgement) {
	t.Helper()
	var b strings.Builder
	b.WriteString(reviewHeader)
	for _, j := range js {
		fmt.Fprintf(&b, "%s:%d\t%s\t%s\t%s\t%s\t%s\t%s\n", j.file, j.line, j.rule, j.severity, tsvSafe(j.key), j.verdict, tsvSafe(j.why), tsvSafe(j.message))
	}
	if err := os.WriteFile(filepath.Join(corpusDir, "review.tsv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// corpusFindings lints the whole corpus, as judgements (verdicts from the
// review where one exists).
func corpusFindings(t *testing.T, m corpusManifest, review map[string]judgement) []judgement {
	t.Helper()
	var out []judgement
	for _, c := range m.Configs {
		for _, f := range lintCorpus(t, c) {
			j := judgement{file: c.File, line: f.Line, rule: f.Rule, severity: string(f.Severity), key: f.Key, verdict: "?", message: f.Message}
			if old, ok := review[j.id()]; ok {
				j.verdict, j.why = old.verdict, old.why
			}
			out = append(out, j)
		}
	}
	return out
}

func TestCorpusReview(t *testing.T) {
	m := loadManifest(t)
	review := loadReview(t)
	got := corpusFindings(t, m, review)
	if *updateCorpus {
		saveReview(t, got)
		review = loadReview(t)
	}
	seen := map[string]bool{}
	for _, j := range got {
		seen[j.id()] = true
		if _, ok := review[j.id()]; !ok {
			t.Errorf("new finding, not judged: %s %s %s %q: %s", j.rule, j.severity, fmt.Sprintf("%s:%d", j.file, j.line), j.key, j.message)
		} else if j.verdict == "?" {
			t.Errorf("finding not judged yet (review.tsv verdict ?): %s %s:%d %q", j.rule, j.file, j.line, j.key)
		}
	}
	for id, j := range review {
		if !seen[id] {
			t.Errorf("judged finding no longer found: %s %s:%d %q (re-run with -update-corpus)", j.rule, j.file, j.line, j.key)
		}
	}
}

// hostAlerts are haproxy -c alerts about this host, not the config: DNS
// names of a compose network, certificates, CA files, maps, Lua scripts.
var hostAlerts = regexp.MustCompile(`could not resolve address|Failed to initialize server\(s\) addr|unable to stat SSL|Couldn't open the ca-file|unable to load|error in Lua file|invalid address|failed to open pattern file|Error\(s\) found in configuration file|Fatal errors found in configuration`)

// haproxyVerdict runs haproxy -c on a corpus config in its environment.
func haproxyVerdict(t *testing.T, c corpusEntry) (class, why string) {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), testbed.HAProxyBin(), "-c", "-f", c.File)
	cmd.Dir = corpusDir
	cmd.Env = []string{}
	for k, v := range c.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return "accepted", ""
	}
	var alerts []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "[ALERT]") {
			_, msg, _ := strings.Cut(l, " : ")
			alerts = append(alerts, strings.TrimSpace(strings.TrimPrefix(msg, "config : ")))
		}
	}
	if len(alerts) == 0 {
		return "refused", strings.TrimSpace(string(out))
	}
	for _, a := range alerts {
		if !hostAlerts.MatchString(a) {
			return "refused", a
		}
	}
	return "host", alerts[0]
}

func TestCorpusHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	m := loadManifest(t)
	review := loadReview(t)
	for i, c := range m.Configs {
		class, why := haproxyVerdict(t, c)
		if *updateCorpus {
			m.Configs[i].HAProxyC, m.Configs[i].HAProxyCWhy = class, why
		} else if class != c.HAProxyC {
			t.Errorf("%s: haproxy -c says %s (%s), the manifest %s", c.File, class, why, c.HAProxyC)
		}
		if class == "refused" {
			continue
		}
		for _, f := range lintCorpus(t, c) {
			j := review[judgement{file: c.File, line: f.Line, rule: f.Rule, severity: string(f.Severity), key: f.Key}.id()]
			if f.Severity == SevError && j.verdict != "tp" {
				t.Errorf("%s (haproxy -c: %s): error %s at line %d not judged a true positive: %s", c.File, class, f.Rule, f.Line, f.Message)
			}
		}
	}
	if *updateCorpus {
		saveManifest(t, m)
	}
}

// measurement is the table docs/rules.md publishes.
func measurement(t *testing.T) string {
	m := loadManifest(t)
	js := corpusFindings(t, m, loadReview(t))
	type tally struct{ tp, noise, unjudged, err, warn, info int }
	per := map[string]*tally{}
	total := tally{}
	for _, j := range js {
		r := per[j.rule]
		if r == nil {
			r = &tally{}
			per[j.rule] = r
		}
		for _, x := range []*tally{r, &total} {
			switch j.verdict {
			case "tp":
				x.tp++
			case "noise":
				x.noise++
			default:
				x.unjudged++
			}
			switch j.severity {
			case "error":
				x.err++
			case "warning":
				x.warn++
			default:
				x.info++
			}
		}
	}
	rules := make([]string, 0, len(per))
	for r := range per {
		rules = append(rules, r)
	}
	sort.Strings(rules)
	pct := func(x tally) string {
		if x.tp+x.noise == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f %%", 100*float64(x.tp)/float64(x.tp+x.noise))
	}
	var b strings.Builder
	withFindings := map[string]bool{}
	for _, j := range js {
		withFindings[j.file] = true
	}
	fmt.Fprintf(&b, "%d configs (%d with a finding), %d findings (%d errors, %d warnings, %d info): %.2f warnings per config, %.2f errors per config.\n\n",
		len(m.Configs), len(withFindings), len(js), total.err, total.warn, total.info, float64(total.warn)/float64(len(m.Configs)), float64(total.err)/float64(len(m.Configs)))
	b.WriteString("| rule | findings | errors | warnings | info | true positives | noise | precision |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rules {
		x := *per[r]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %s |\n", r, x.tp+x.noise+x.unjudged, x.err, x.warn, x.info, x.tp, x.noise, pct(x))
	}
	fmt.Fprintf(&b, "| all | %d | %d | %d | %d | %d | %d | %s |\n", len(js), total.err, total.warn, total.info, total.tp, total.noise, pct(total))
	return b.String()
}

const (
	measureBegin = "<!-- corpus measurement: begin (go test ./validate -run TestCorpusMeasurement -update-corpus) -->\n"
	measureEnd   = "<!-- corpus measurement: end -->"
)

func TestCorpusMeasurement(t *testing.T) {
	want := measurement(t)
	b, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, measureBegin), strings.Index(doc, measureEnd)
	if i < 0 || j < i {
		t.Fatalf("docs/rules.md has no corpus measurement between %q and %q", strings.TrimSpace(measureBegin), measureEnd)
	}
	got := doc[i+len(measureBegin) : j]
	if got == want {
		return
	}
	if *updateCorpus {
		doc = doc[:i+len(measureBegin)] + want + doc[j:]
		if err := os.WriteFile("../docs/rules.md", []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/rules.md's corpus measurement is out of date; want:\n%s", want)
}
