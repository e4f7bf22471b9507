package validate

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/haguard/haguard/config"
)

// Severity of a finding.
type Severity string

// Severities, from the most to the least serious.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
	SevInfo    Severity = "info"
)

// Rank orders severities: error 3, warning 2, info 1, unknown 0.
func (s Severity) Rank() int {
	switch s {
	case SevError:
		return 3
	case SevWarning:
		return 2
	case SevInfo:
		return 1
	}
	return 0
}

// ParseSeverity accepts error, warning or info.
func ParseSeverity(s string) (Severity, error) {
	v := Severity(s)
	if v.Rank() == 0 {
		return "", fmt.Errorf("severity %q is not error, warning or info", s)
	}
	return v, nil
}

// Finding is one rule hit, as printed and as JSON.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Section  string   `json:"section"`
	// Key names what the finding is about within its rule and section
	// ("timeout server", "route frontend 'a' → backend 'b'", a server's
	// name): it does not move when lines do, so NewFindings can tell a
	// finding the running config already had from a new one.
	Key string `json:"key"`
	// About are the sections the finding decides, when its line is in
	// another one (a defaults value that a backend inherits): "backend db".
	About []string `json:"about,omitempty"`
	// Suppressed is set on the findings a `# haguard:ignore` comment or
	// lint.ignore silences (Report.Suppressed), with the reason given.
	Suppressed *Suppression `json:"suppressed,omitempty"`
}

// FactKind is a set of fact sources a rule needs.
type FactKind uint8

// Fact sources. A config-only rule needs none.
const (
	NeedsNone   FactKind = 0
	NeedsDB     FactKind = 1 << iota // live DB variables per server
	NeedsKernel                      // sysctls in haproxy's netns
	NeedsPath                        // the declared path (haguard.yaml path:)
	NeedsPolicy                      // the candidate policy (haguard.yaml policy:)
)

func (k FactKind) String() string {
	if k == NeedsNone {
		return "none"
	}
	var s string
	for _, f := range []struct {
		k FactKind
		n string
	}{{NeedsDB, "db"}, {NeedsKernel, "kernel"}, {NeedsPath, "path"}, {NeedsPolicy, "policy"}} {
		if k&f.k != 0 {
			if s != "" {
				s += "+"
			}
			s += f.n
		}
	}
	return s
}

// DBServerFacts are what one database server said (SHOW GLOBAL VARIABLES,
// SHOW GLOBAL STATUS LIKE 'wsrep%').
type DBServerFacts struct {
	Variables map[string]string
	Status    map[string]string
	Err       error // the server could not be asked
}

// KernelFacts are sysctls read in haproxy's network namespace, by name
// ("net.ipv4.tcp_keepalive_time").
type KernelFacts struct {
	Sysctls map[string]string
}

// Facts are what the config cannot say. Every part is optional: a nil
// part means "not gathered", and the rules that need it are skipped.
type Facts struct {
	// DB is keyed by backend name, then server name.
	DB map[string]map[string]DBServerFacts
	// Kernel holds sysctls; nil when not read.
	Kernel *KernelFacts
	// Path is the declared path from haguard.yaml; nil when not declared.
	Path *config.Path
	// Backends are declared backend facts (haguard.yaml facts.backends);
	// config-only rules read them when present (e.g. galera: true).
	Backends map[string]config.BackendFacts
	// Policy is the candidate policy; nil skips the PO rules.
	Policy *Policy
	// Generations is haguard.yaml's generations block (HA010: enforced
	// limits bound old workers as hard-stop-after does); nil when not
	// known.
	Generations *config.Generations
}

// Has reports whether every source in k is present.
func (f *Facts) Has(k FactKind) bool {
	if k == NeedsNone {
		return true
	}
	if f == nil {
		return false
	}
	if k&NeedsDB != 0 && f.DB == nil {
		return false
	}
	if k&NeedsKernel != 0 && f.Kernel == nil {
		return false
	}
	if k&NeedsPath != 0 && f.Path == nil {
		return false
	}
	if k&NeedsPolicy != 0 && f.Policy == nil {
		return false
	}
	return true
}

// Input is what a rule reads.
type Input struct {
	Config *Config
	Facts  *Facts // never nil inside a rule; its parts may be
	Routes []Route

	times []timeValue // computed once, on demand
	tcp   []Route
	live  []*Proxy
	pol   map[string][]Finding // the PO rules' findings, computed once
}

// proxies are the frontends, backends and listens HAProxy starts (Live),
// computed once per Input: the rules about traffic and health checks read
// these, not the disabled ones.
func (in *Input) proxies() []*Proxy {
	if in.live == nil {
		in.live = Live(in.Config.Proxies())
	}
	return in.live
}

// Rule is one entry of the registry.
type Rule struct {
	ID       string
	Severity Severity // the default; a finding may lower or raise it as documented
	Title    string
	Needs    FactKind
	Eval     func(in *Input) []Finding
}

// Registry holds rules by ID.
type Registry struct {
	rules []Rule
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// DefaultRegistry returns a registry with every rule haguard implements:
// the config-only rules (HA) and the rules that need facts (DB, KN, PA),
// which Lint skips when their facts are absent.
func DefaultRegistry() *Registry {
	r := NewRegistry()
	for _, family := range [][]Rule{timeUnitRules(), timeoutRules(), checkRules(), keepaliveRules(),
		readerRules(), stateRules(), dbRules(), kernelRules(), pathRules(), policyRules()} {
		if err := r.Register(family...); err != nil {
			panic(err) // a duplicate ID is a programming error caught by the tests
		}
	}
	return r
}

// Register adds rules; an ID may be registered once.
func (r *Registry) Register(rules ...Rule) error {
	for _, nr := range rules {
		if nr.ID == "" || nr.Eval == nil || nr.Severity.Rank() == 0 {
			return fmt.Errorf("rule %q: id, severity and eval are required", nr.ID)
		}
		for _, have := range r.rules {
			if have.ID == nr.ID {
				return fmt.Errorf("rule %s registered twice", nr.ID)
			}
		}
		r.rules = append(r.rules, nr)
	}
	slices.SortFunc(r.rules, func(a, b Rule) int { return cmp.Compare(a.ID, b.ID) })
	return nil
}

// Rules lists the registered rules by ID.
func (r *Registry) Rules() []Rule { return slices.Clone(r.rules) }

// Lint runs every rule whose facts are present and returns the findings
// sorted by file, line, rule. facts may be nil.
func (r *Registry) Lint(cfg *Config, facts *Facts) []Finding {
	if facts == nil {
		facts = &Facts{}
	}
	in := &Input{Config: cfg, Facts: facts, Routes: Routes(cfg)}
	var out []Finding
	for _, rule := range r.rules {
		if !facts.Has(rule.Needs) {
			continue
		}
		for _, f := range rule.Eval(in) {
			out = append(out, rule.complete(f))
		}
	}
	return sortFindings(out, cfg.Files)
}

// complete fills what a rule's finding leaves to the registry: the rule's
// ID and severity, the stable key and what it is about.
func (rule Rule) complete(f Finding) Finding {
	if f.Rule == "" {
		f.Rule = rule.ID
	}
	if f.Severity == "" {
		f.Severity = rule.Severity
	}
	if f.Key == "" {
		f.Key = defaultKey(f.Message)
	}
	if f.About == nil {
		f.About = aboutFromMessage(f.Message, f.Section)
	}
	return f
}

// numbers are the values a finding's message quotes: durations, counts,
// sizes. defaultKey drops them, so that a finding whose value changed
// (timeout 50s to 40s) is still the same finding.
var numbers = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[0-9]+(\.[0-9]+)?( ?(us|ms|s|m|h|d|days))?\b`) })

func defaultKey(msg string) string { return numbers().ReplaceAllString(msg, "#") }

// sectionRef is how messages name a section: frontend 'a', backend 'b'.
var sectionRef = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\b(frontend|backend|listen|defaults) '([^']*)'`) })

// aboutFromMessage lists the sections a message names, other than the
// finding's own: a finding on a defaults line is about the proxies it
// decides.
func aboutFromMessage(msg, own string) []string {
	var out []string
	for _, m := range sectionRef().FindAllStringSubmatch(msg, -1) {
		s := m[1] + " " + m[2]
		if s != own && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// sortFindings orders findings by file (in -f order), line and rule, and
// drops exact duplicates.
func sortFindings(fs []Finding, files []string) []Finding {
	rank := make(map[string]int, len(files))
	for i, f := range files {
		rank[f] = i
	}
	slices.SortFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(rank[a.File], rank[b.File]), cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line), cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Section, b.Section),
			cmp.Compare(a.Message, b.Message))
	})
	return slices.CompactFunc(fs, func(a, b Finding) bool {
		return a.Rule == b.Rule && a.Severity == b.Severity && a.Message == b.Message && a.Fix == b.Fix &&
			a.File == b.File && a.Line == b.Line && a.Section == b.Section && a.Key == b.Key &&
			slices.Equal(a.About, b.About)
	})
}

// finding builds a finding at pos. Its section is the one that contains
// pos, so a finding's file, line and section always agree: a rule that
// points at a value inherited from defaults names the defaults section,
// and says in its message which proxy or route the value decides.
func (in *Input) finding(sev Severity, pos Pos, msg, fix string) Finding {
	return Finding{Severity: sev, Message: msg, Fix: fix, File: pos.File, Line: pos.Line, Section: in.Config.SectionAt(pos)}
}

// findingKey is finding with its Key set.
func (in *Input) findingKey(key string, sev Severity, pos Pos, msg, fix string) Finding {
	f := in.finding(sev, pos, msg, fix)
	f.Key = key
	return f
}

// configPos is where a finding about the config or the host as a whole
// points: the global header, else line 0 of the first file (no line, no
// section).
func (in *Input) configPos() Pos {
	if g := in.Config.Global; g != nil && g.Pos.Line > 0 {
		return g.Pos
	}
	if len(in.Config.Files) > 0 {
		return Pos{File: in.Config.Files[0]}
	}
	return Pos{}
}

// Infinite stands for an unset timer in comparisons.
const Infinite = time.Duration(1<<63 - 1)

// dur is a timer's duration, Infinite when unset (0 = unset).
func dur(t TimeSetting) time.Duration {
	if !t.Set() {
		return Infinite
	}
	return t.Time.D
}

// idleFor says how long sessions may stay idle: "for 8h", or "forever
// (no timeout set)".
func idleFor(d time.Duration) string {
	if d == Infinite {
		return "forever (no timeout set)"
	}
	return "for " + FormatDuration(d)
}

// fmtDur formats a timer, "infinite" when unset.
func fmtDur(d time.Duration) string {
	if d == Infinite {
		return "infinite (unset)"
	}
	return FormatDuration(d)
}
