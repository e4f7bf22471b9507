package validate

import (
	"os"
	"regexp"
	"testing"
)

// TestEveryRuleHasADocEntry fails when a registered rule has no entry in
// docs/rules.md, or when its heading ("## ID · severity · title") says
// another severity or title than the registry: ARCHITECTURE.md promises
// every rule ID a page there.
func TestEveryRuleHasADocEntry(t *testing.T) {
	b, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile(`(?m)^## ([A-Z]{2}\d{3}) · (\S+) · (.+)$`)
	type entry struct{ sev, title string }
	docs := map[string]entry{}
	for _, m := range heading.FindAllStringSubmatch(string(b), -1) {
		if _, dup := docs[m[1]]; dup {
			t.Errorf("docs/rules.md: %s has two entries", m[1])
		}
		docs[m[1]] = entry{m[2], m[3]}
	}
	rules := DefaultRegistry().Rules()
	if len(rules) == 0 {
		t.Fatal("empty registry")
	}
	known := map[string]bool{}
	for _, r := range rules {
		known[r.ID] = true
		e, ok := docs[r.ID]
		if !ok {
			t.Errorf("docs/rules.md has no entry `## %s · %s · %s`", r.ID, r.Severity, r.Title)
			continue
		}
		if e.sev != string(r.Severity) || e.title != r.Title {
			t.Errorf("docs/rules.md: %s is %q · %q, the registry says %q · %q", r.ID, e.sev, e.title, r.Severity, r.Title)
		}
	}
	for id := range docs {
		if !known[id] {
			t.Errorf("docs/rules.md documents %s, which is not a registered rule", id)
		}
	}
}
