package validate

import (
	"fmt"
	"strings"
)

// The candidate policy (PO): what a token holder must not bring into the
// config, because haproxy runs as root when it starts (docs/security.md).
// A line the running config already has, unchanged in the same section,
// stays allowed; so does a file the running config already references the
// same way; policy.allow in haguard.yaml allows more on purpose.
func policyRules() []Rule {
	rule := func(id, title string) Rule {
		return Rule{ID: id, Severity: SevError, Title: title, Needs: NeedsPolicy,
			Eval: func(in *Input) []Finding { return in.policyFindings(id) }}
	}
	return []Rule{
		rule("PO001", "program section"),
		rule("PO002", "Lua code loaded"),
		rule("PO003", "External check or fork allowed"),
		rule("PO004", "Environment-setting directive"),
		rule("PO005", "File outside the allowed paths"),
		rule("PO006", "Device, /proc or /sys file"),
		rule("PO007", "Shared library loaded"),
		rule("PO008", "Line the policy cannot read"),
	}
}

const allowFix = "A line the running config already has, unchanged in the same section, stays allowed; to allow a new one on purpose, add it to policy.allow in haguard.yaml (root's file)."

// lineRule refuses a kind of line; why says what it would do.
type lineRule struct {
	id  string
	why func(sec *Proxy, ws []string) string
}

var lineRules = []lineRule{
	{"PO001", func(sec *Proxy, ws []string) string {
		switch {
		case sec.Kind != "program":
		case ws[0] == "program":
			return fmt.Sprintf("program section %q: the haproxy master would run its command as root at every start and reload", sec.Name)
		case ws[0] == "command":
			return fmt.Sprintf("program %q runs %q as root", sec.Name, strings.Join(ws[1:], " "))
		}
		return ""
	}},
	{"PO002", func(sec *Proxy, ws []string) string {
		if sec.Kind == KindGlobal && (ws[0] == "lua-load" || ws[0] == "lua-load-per-thread" || ws[0] == "lua-prepend-path") {
			return fmt.Sprintf("%s: Lua code runs inside haproxy (as root while it starts, and already during `haproxy -c`)", ws[0])
		}
		return ""
	}},
	{"PO003", func(sec *Proxy, ws []string) string {
		switch {
		case sec.Kind == KindGlobal && (ws[0] == "external-check" || ws[0] == "insecure-fork-wanted" || ws[0] == "insecure-setuid-wanted"):
			return fmt.Sprintf("%s lets haproxy fork programs (external checks)", ws[0])
		case !sec.isProxy():
		case ws[0] == "option" && len(ws) > 1 && ws[1] == "external-check":
			return "option external-check runs a program for every health check"
		case ws[0] == "external-check" && len(ws) > 1:
			return fmt.Sprintf("external-check %s names the program health checks run", ws[1])
		}
		return ""
	}},
	{"PO004", func(sec *Proxy, ws []string) string {
		switch ws[0] {
		case "setenv", "presetenv", "resetenv", "unsetenv":
			if sec.Kind == KindGlobal {
				return fmt.Sprintf("%s changes haproxy's environment, which later lines and every program it runs read", ws[0])
			}
		}
		return ""
	}},
	{"PO007", func(sec *Proxy, ws []string) string {
		switch {
		case sec.Kind == KindGlobal && (ws[0] == "ssl-engine" || ws[0] == "ssl-provider-path"):
			return fmt.Sprintf("%s makes OpenSSL load shared libraries into haproxy", ws[0])
		case sec.Kind == KindGlobal && ws[0] == "ssl-provider" && len(ws) > 1 && !stockProviders[ws[1]]:
			return fmt.Sprintf("ssl-provider %q loads a shared library into haproxy", ws[1])
		case sec.isProxy() && ws[0] == "filter" && len(ws) > 1 && (ws[1] == "opentracing" || ws[1] == "opentelemetry"):
			return fmt.Sprintf("filter %s loads the tracer plugin its config names", ws[1])
		}
		return ""
	}},
}

// unreadable says why the policy cannot know what haproxy will make of a
// line: an environment variable (its value is haproxy's, and
// "${UNSET-lua-load}" is lua-load), or a conditional block (which lines
// haproxy keeps depends on its environment and version).
func unreadable(dec []string, env bool) string {
	switch {
	case dec[0] == ".if" || dec[0] == ".elif":
		return fmt.Sprintf("%s: which lines haproxy keeps depends on its own environment and version, which the policy cannot know", dec[0])
	case env:
		return "the line names an environment variable: what haproxy reads there (a keyword, a file) is known only when it runs"
	}
	return ""
}

// stockProviders are OpenSSL 3's built-in providers.
var stockProviders = map[string]bool{"default": true, "legacy": true, "base": true, "fips": true, "null": true}

func (p *Proxy) isProxy() bool {
	switch p.Kind {
	case KindDefaults, KindFrontend, KindBackend, KindListen:
		return true
	}
	return false
}

// policyFindings computes every PO finding once per Input.
func (in *Input) policyFindings(id string) []Finding {
	if in.pol == nil {
		in.pol = evalPolicy(in)
	}
	return in.pol[id]
}

// sectionLines are a section's lines, led by its header for sections
// whose header alone matters (a program section).
func sectionLines(p *Proxy) []Directive {
	if p.Kind != "program" {
		return p.Directives
	}
	head := Directive{Pos: p.Pos, Words: []string{"program", p.Name}}
	return append([]Directive{head}, p.Directives...)
}

// runningIndex is what the running config has: the lines whose keyword
// a suspect line of the candidate has, by section and words, and its file
// references by kind and path. Built only when the candidate has a
// suspect line, and only for those keywords: on an 85k-line config most
// candidates have none, or a handful.
type runningIndex struct {
	lines map[string]bool
	refs  map[string]bool
}

func indexRunning(p *Policy, keywords map[string]bool, wantRefs bool) runningIndex {
	ix := runningIndex{lines: map[string]bool{}, refs: map[string]bool{}}
	if p.Running == nil {
		return ix
	}
	for _, s := range append(p.Running.AllSections(), p.Running.Others...) {
		for _, d := range sectionLines(s) {
			if len(d.Words) > 0 && keywords[d.Words[0]] {
				ix.lines[lineKey(s.Section(), d.Words)] = true
			}
		}
	}
	if wantRefs {
		for _, r := range FileRefsWith(p.Running, p.Refs) {
			if r.Path != "" {
				ix.refs[r.Kind+"\x00"+r.Path] = true
			}
		}
	}
	return ix
}

// suspectLine is a candidate line a line rule refuses unless the running
// config has it or policy.allow names it.
type suspectLine struct {
	id, why string
	sec     *Proxy
	d       Directive
	dec     []string // d.Words as haproxy reads them
}

func evalPolicy(in *Input) map[string][]Finding {
	p := in.Facts.Policy
	out := map[string][]Finding{}
	keywords := map[string]bool{}
	var lines []suspectLine
	unread := map[Pos]bool{} // lines PO008 refuses: their references are not judged again
	for _, s := range append(in.Config.AllSections(), in.Config.Others...) {
		for _, d := range sectionLines(s) {
			if len(d.Words) == 0 {
				continue
			}
			// The rules read the words as haproxy does; the line is
			// compared with the running config as written.
			dec, env := haproxyWords(d.Words)
			if dec[0] == "" {
				continue
			}
			if why := unreadable(dec, env); why != "" {
				lines = append(lines, suspectLine{"PO008", why, s, d, dec})
				keywords[d.Words[0]] = true
				unread[d.Pos] = true
			}
			for _, r := range lineRules {
				if why := r.why(s, dec); why != "" {
					lines = append(lines, suspectLine{r.id, why, s, d, dec})
					keywords[d.Words[0]] = true
				}
			}
		}
	}
	var refs []FileRef
	for _, r := range FileRefsWith(in.Config, p.Refs) {
		if !r.Optional && r.Access != AccessExec {
			refs = append(refs, r)
			keywords[r.words[0]] = true
		}
	}
	if len(lines) == 0 && len(refs) == 0 {
		return out
	}
	ix := indexRunning(p, keywords, len(refs) > 0)
	for _, l := range lines {
		if ix.lines[lineKey(l.sec.Section(), l.d.Words)] || p.allowed(l.dec) {
			if l.id == "PO008" {
				delete(unread, l.d.Pos)
			}
			continue
		}
		out[l.id] = append(out[l.id], in.finding(SevError, l.d.Pos, l.why+"; the running config does not have this line", policyFix(l.id)))
	}
	pc := newPathCheck(p)
	for _, r := range refs {
		// A reference stays allowed when the running config loads the
		// same file the same way: by its resolved path, not by the line,
		// since a changed default-path or crt-base points an unchanged
		// line elsewhere.
		known := ix.refs[r.Kind+"\x00"+r.Path]
		if r.Path == "" {
			known = ix.lines[lineKey(r.Section, r.words)]
		}
		if unread[r.Pos] || known || p.allowed(r.dec) {
			continue
		}
		id, msg := pc.judge(r)
		if id != "" {
			out[id] = append(out[id], in.finding(SevError, r.Pos, msg, policyFix(id)))
			continue
		}
		if r.Kind == "crt-list" {
			for _, e := range pc.listEntries(r) {
				if e.Optional || ix.refs[e.Kind+"\x00"+e.Path] {
					continue
				}
				if id, _ := pc.judge(e); id != "" {
					// The entry's path is content of another file: name the
					// list and the line only.
					out[id] = append(out[id], in.finding(SevError, r.Pos,
						fmt.Sprintf("crt-list %s, line %d: its %s is refused (%s); the path is not shown, it comes from that file",
							r.Path, e.Pos.Line, e.Kind, id), policyFix(id)))
				}
			}
		}
	}
	return out
}

func policyFix(id string) string {
	switch id {
	case "PO005":
		return "Keep the file under policy.allowed_paths (TLS material: policy.cert_paths; sockets, pidfile, chroot: policy.runtime_paths), or add the directory there. " + allowFix
	case "PO006":
		return "Use a regular file under policy.allowed_paths. " + allowFix
	case "PO008":
		return "Write the value itself, not an environment variable, and no conditional block. " + allowFix
	}
	return allowFix
}

// pathCheck judges file references against the policy's roots.
type pathCheck struct {
	p                            *Policy
	allowed, cert, runtime, both rootSet
}

func newPathCheck(p *Policy) *pathCheck {
	return &pathCheck{p: p, allowed: newRootSet(p.AllowedPaths), cert: newRootSet(p.CertPaths),
		runtime: newRootSet(p.RuntimePaths), both: newRootSet(p.AllowedPaths, p.CertPaths)}
}

// judge returns the rule a reference breaks ("" when none) and why.
func (c *pathCheck) judge(r FileRef) (string, string) {
	what := r.Kind + " " + r.Raw
	if r.Path == "" {
		return "PO005", fmt.Sprintf("%s names an environment variable: which file haproxy %s is known only when it runs", what, verb(r.Access))
	}
	if r.Kind == "log-socket" && r.Path == "/dev/log" {
		return "", "" // the syslog socket: haproxy only writes log lines to it
	}
	var forms []string
	for _, p := range r.Paths() {
		forms = append(forms, resolvedForms(p)...)
	}
	for _, f := range forms {
		if kernelPath(f) {
			where := "is"
			if f != r.Raw {
				where = "leads to " + f + ","
			}
			return "PO006", fmt.Sprintf("%s %s under /dev, /proc or /sys: a device or kernel file can hang `haproxy -c` (/dev/zero), grow it without bound (/dev/urandom) or expose the host", what, where)
		}
	}
	roots, list := c.allowed, "policy.allowed_paths"
	switch {
	case r.Access == AccessWrite || r.Access == AccessConnect:
		roots, list = c.runtime, "policy.runtime_paths"
	case r.Access == AccessRead && r.IsTLS():
		roots, list = c.both, "policy.allowed_paths and policy.cert_paths"
	}
	for _, f := range forms {
		if !roots.has(f) {
			return "PO005", fmt.Sprintf("%s: haproxy %s %s, outside %s (%s)", what, verb(r.Access), f, list, strings.Join(roots, ", "))
		}
		if r.Access == AccessServe && c.cert.has(f) {
			return "PO005", fmt.Sprintf("%s: haproxy would send %s to clients, and it is in a certificate directory (policy.cert_paths)", what, f)
		}
	}
	return "", ""
}

func verb(a Access) string {
	switch a {
	case AccessServe:
		return "serves"
	case AccessWrite:
		return "creates or replaces"
	case AccessConnect:
		return "connects to"
	}
	return "reads"
}

// listEntries reads an allowed crt-list and returns its entries.
func (c *pathCheck) listEntries(r FileRef) []FileRef {
	read := c.p.ReadFile
	if read == nil {
		read = readList
	}
	data, err := read(r.Path)
	if err != nil {
		return nil // a missing or odd list: `haproxy -c` says so
	}
	return CrtListRefs(r, data)
}
