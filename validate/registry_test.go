package validate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/haguard/haguard/config"
)

func TestDefaultRegistryHasEveryConfigRule(t *testing.T) {
	var rules []Rule
	for _, r := range DefaultRegistry().Rules() {
		if strings.HasPrefix(r.ID, "HA") {
			rules = append(rules, r)
		}
	}
	if len(rules) != 21 {
		t.Fatalf("%d rules, want HA001..HA021", len(rules))
	}
	for i, r := range rules {
		if want := fmt.Sprintf("HA%03d", i+1); r.ID != want {
			t.Errorf("rule %d is %s, want %s", i, r.ID, want)
		}
		if r.Title == "" || r.Needs != NeedsNone {
			t.Errorf("%s: title %q needs %v", r.ID, r.Title, r.Needs)
		}
	}
}

// TestDefaultRegistryHasEveryFactRule proves the rules that need facts
// are in the default registry too (callers register nothing else), and
// that each declares the facts it needs, so Lint skips it without them.
func TestDefaultRegistryHasEveryFactRule(t *testing.T) {
	want := map[string]FactKind{
		"DB100": NeedsDB, "DB101": NeedsDB, "DB102": NeedsDB, "DB103": NeedsDB, "DB104": NeedsDB, "DB105": NeedsDB,
		"KN200": NeedsKernel, "KN201": NeedsKernel | NeedsPath, "KN202": NeedsPath, "KN203": NeedsKernel, "KN204": NeedsPath,
		"PA301": NeedsPath, "PA302": NeedsPath, "PA303": NeedsPath | NeedsDB, "PA304": NeedsPath,
		"PA305": NeedsPath, "PA306": NeedsPath, "PA307": NeedsPath,
		"PO001": NeedsPolicy, "PO002": NeedsPolicy, "PO003": NeedsPolicy, "PO004": NeedsPolicy,
		"PO005": NeedsPolicy, "PO006": NeedsPolicy, "PO007": NeedsPolicy, "PO008": NeedsPolicy,
	}
	got := map[string]FactKind{}
	for _, r := range DefaultRegistry().Rules() {
		if !strings.HasPrefix(r.ID, "HA") {
			got[r.ID] = r.Needs
		}
	}
	if len(got) != len(want) {
		t.Errorf("fact rules %v, want %v", got, want)
	}
	for id, needs := range want {
		if g, ok := got[id]; !ok || g != needs {
			t.Errorf("%s: registered %v, needs %v; want registered, needs %v", id, ok, g, needs)
		}
	}
}

func TestRegisterRefusesDuplicates(t *testing.T) {
	r := NewRegistry()
	rule := Rule{ID: "X001", Severity: SevInfo, Eval: func(*Input) []Finding { return nil }}
	if err := r.Register(rule); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(rule); err == nil {
		t.Fatal("duplicate id accepted")
	}
	if err := r.Register(Rule{ID: "X002", Severity: "fatal", Eval: rule.Eval}); err == nil {
		t.Fatal("bad severity accepted")
	}
}

// TestFactsGateRules proves a rule that needs facts runs only when they are there.
func TestFactsGateRules(t *testing.T) {
	cfg, err := ParseReader("x.cfg", strings.NewReader("backend b\n server s 127.0.0.1:3306\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry()
	hit := func(id string) func(*Input) []Finding {
		return func(in *Input) []Finding { return []Finding{{Rule: id, Message: "hit", File: "x.cfg", Line: 1}} }
	}
	if err := r.Register(
		Rule{ID: "DB101", Severity: SevWarning, Needs: NeedsDB, Eval: hit("DB101")},
		Rule{ID: "KN201", Severity: SevError, Needs: NeedsKernel, Eval: hit("KN201")},
		Rule{ID: "PA301", Severity: SevError, Needs: NeedsPath, Eval: hit("PA301")},
		Rule{ID: "ZZ001", Severity: SevInfo, Needs: NeedsDB | NeedsPath, Eval: hit("ZZ001")},
	); err != nil {
		t.Fatal(err)
	}
	ids := func(f *Facts) string {
		var out []string
		for _, x := range r.Lint(cfg, f) {
			out = append(out, x.Rule+"/"+string(x.Severity))
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct {
		facts *Facts
		want  string
	}{
		{nil, ""},
		{&Facts{}, ""},
		{&Facts{DB: map[string]map[string]DBServerFacts{}}, "DB101/warning"},
		{&Facts{Kernel: &KernelFacts{}}, "KN201/error"},
		{&Facts{Path: &config.Path{}, DB: map[string]map[string]DBServerFacts{}}, "DB101/warning,PA301/error,ZZ001/info"},
	} {
		if got := ids(tt.facts); got != tt.want {
			t.Errorf("facts %+v: rules %q, want %q", tt.facts, got, tt.want)
		}
	}
	if NeedsDB.String() != "db" || (NeedsDB|NeedsPath).String() != "db+path" || NeedsNone.String() != "none" {
		t.Error("FactKind.String")
	}
}

func TestLiveWsrepMakesHA011AnError(t *testing.T) {
	cfg, err := ParseReader("x.cfg", strings.NewReader(`defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m
backend app
    option mysql-check
    server n1 127.0.0.1:3306 check
`))
	if err != nil {
		t.Fatal(err)
	}
	reg := DefaultRegistry()
	count := func(f *Facts) (n int, sev Severity) {
		for _, x := range reg.Lint(cfg, f) {
			if x.Rule == "HA011" {
				n, sev = n+1, x.Severity
			}
		}
		return
	}
	if n, _ := count(nil); n != 0 {
		t.Fatalf("backend 'app' is not known as Galera yet: %d HA011", n)
	}
	live := &Facts{DB: map[string]map[string]DBServerFacts{"app": {"n1": {Variables: map[string]string{"wsrep_on": "ON"}}}}}
	if n, sev := count(live); n != 1 || sev != SevError {
		t.Fatalf("with wsrep_on=ON: %d HA011 (%s), want one error", n, sev)
	}
}
