package manpages

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// page is one command's man page.
type page struct {
	cmd     *cobra.Command
	version string
	date    time.Time
}

// longParts splits a command's Long into its description, its "Exit
// codes" paragraph(s) and its "Examples:" lines.
type longParts struct {
	description []string // blocks
	exit        string
	examples    string
}

// exitStart is where an "Exit codes" paragraph starts: a line, or a
// sentence.
var exitStart = regexp.MustCompile(`(?m)(?:^|\. )(Exit codes)`)

func splitLong(long string) longParts {
	var p longParts
	text := strings.TrimSpace(long)
	if i := strings.Index(text, "\nExamples:\n"); i >= 0 {
		p.examples = strings.TrimRight(text[i+len("\nExamples:\n"):], "\n")
		text = strings.TrimSpace(text[:i])
	}
	if m := exitStart.FindStringSubmatchIndex(text); m != nil {
		p.exit = strings.TrimSpace(text[m[2]:])
		text = strings.TrimSpace(text[:m[2]])
	}
	for _, b := range strings.Split(text, "\n\n") {
		if strings.TrimSpace(b) != "" {
			p.description = append(p.description, strings.Trim(b, "\n"))
		}
	}
	return p
}

func (p page) render(w *bytes.Buffer) {
	c := p.cmd
	name := PageName(c)
	parts := splitLong(c.Long)
	fmt.Fprintf(w, ".TH %s \"1\" %s %s %s\n", quote(strings.ToUpper(name)), quote(p.date.Format("2006-01-02")),
		quote("haguard "+p.version), quote("haguard manual"))

	w.WriteString(".SH NAME\n")
	fmt.Fprintf(w, "%s \\- %s\n", escape(name), escape(c.Short))

	w.WriteString(".SH SYNOPSIS\n")
	p.synopsis(w)

	w.WriteString(".SH DESCRIPTION\n")
	if len(parts.description) == 0 {
		w.WriteString(escapeText(c.Short) + "\n")
	}
	for _, b := range parts.description {
		block(w, b)
	}

	if subs := Commands(c)[1:]; len(subs) > 0 {
		w.WriteString(".SH COMMANDS\n")
		for _, s := range subs {
			fmt.Fprintf(w, ".TP\n\\fB%s\\fR(1)\n%s\n", escape(PageName(s)), escapeText(s.Short))
		}
	}

	w.WriteString(".SH OPTIONS\n")
	local := visibleFlags(c.NonInheritedFlags())
	if len(local) == 0 {
		w.WriteString("None of its own; see GLOBAL OPTIONS.\n")
	}
	for _, f := range local {
		flagEntry(w, f)
	}
	if inherited := visibleFlags(c.InheritedFlags()); len(inherited) > 0 {
		w.WriteString(".SH GLOBAL OPTIONS\n")
		for _, f := range inherited {
			flagEntry(w, f)
		}
	}

	w.WriteString(".SH EXIT STATUS\n")
	exit := parts.exit
	if exit == "" {
		exit = c.Annotations[annotationExit]
	}
	if exit == "" {
		exit = splitLong(c.Root().Long).exit
	}
	exitStatus(w, exit)

	if env := environment(c); len(env) > 0 {
		w.WriteString(".SH ENVIRONMENT\n")
		for _, e := range env {
			fmt.Fprintf(w, ".TP\n\\fB%s\\fR\n%s\n", escape(e[0]), escapeText(e[1]))
		}
	}

	if files := c.Annotations[annotationFiles]; files != "" {
		w.WriteString(".SH FILES\n")
		for _, l := range strings.Split(files, "\n") {
			path, what, _ := strings.Cut(l, "\t")
			fmt.Fprintf(w, ".TP\n\\fI%s\\fR\n%s\n", escape(path), escapeText(what))
		}
	}

	examples := parts.examples
	if examples == "" {
		examples = c.Example
	}
	if examples != "" {
		w.WriteString(".SH EXAMPLES\n")
		preformatted(w, examples)
	}

	w.WriteString(".SH SEE ALSO\n")
	w.WriteString(seeAlso(c) + "\n")
}

// synopsis is the command's use line with [OPTIONS] for cobra's [flags].
func (p page) synopsis(w *bytes.Buffer) {
	c := p.cmd
	path := c.CommandPath()
	rest := strings.TrimSpace(strings.TrimPrefix(c.Use, c.Name()))
	if c.HasAvailableSubCommands() && !c.Runnable() {
		rest = "COMMAND " + rest
	}
	fmt.Fprintf(w, "\\fB%s\\fR [\\fIOPTIONS\\fR] %s\n", escape(path), escape(rest))
}

// block renders one paragraph of --help text: plain lines are filled,
// indented lines (tables, lists) are kept as they are.
func block(w *bytes.Buffer, b string) {
	lines := strings.Split(b, "\n")
	i := 0
	for i < len(lines) && !isIndented(lines[i]) {
		i++
	}
	if i > 0 {
		w.WriteString(".PP\n")
		w.WriteString(escapeText(strings.Join(lines[:i], "\n")) + "\n")
	}
	if i < len(lines) {
		if i == 0 {
			w.WriteString(".PP\n")
		}
		preformatted(w, strings.Join(lines[i:], "\n"))
	}
}

func isIndented(l string) bool { return strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") }

// preformatted writes lines as they are, their common indent removed,
// indented by the page.
func preformatted(w *bytes.Buffer, text string) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if common < 0 || n < common {
			common = n
		}
	}
	w.WriteString(".RS 4\n.nf\n")
	for _, l := range lines {
		if len(l) >= common && common > 0 {
			l = l[common:]
		}
		w.WriteString(escapeLine(l) + "\n")
	}
	w.WriteString(".fi\n.RE\n")
}

// exitCode finds "0 text" items in an inline "Exit codes: 0 ...; 1 ..."
// sentence.
var exitItem = regexp.MustCompile(`(?:^|[;,]\s+)([0-3])\s+`)

// exitStatus renders an "Exit codes" paragraph as a list of codes.
func exitStatus(w *bytes.Buffer, text string) {
	head, body, _ := strings.Cut(text, ":")
	if i := strings.Index(head, "("); i >= 0 {
		if note := strings.Trim(head[i:], "() "); note != "" {
			w.WriteString(".PP\n" + escapeText(strings.ToUpper(note[:1])+note[1:]+".") + "\n")
		}
	}
	var items [][2]string
	if strings.Contains(body, "\n  ") || strings.HasPrefix(body, "\n") {
		for _, l := range strings.Split(body, "\n") {
			t := strings.TrimSpace(l)
			if t == "" {
				continue
			}
			if code, rest, ok := strings.Cut(t, " "); ok && len(code) == 1 && code[0] >= '0' && code[0] <= '9' {
				items = append(items, [2]string{code, strings.TrimSpace(rest)})
			} else if len(items) > 0 {
				items[len(items)-1][1] += " " + t
			}
		}
	} else {
		flat := strings.Join(strings.Fields(body), " ")
		locs := exitItem.FindAllStringSubmatchIndex(flat, -1)
		for i, m := range locs {
			end := len(flat)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			items = append(items, [2]string{flat[m[2]:m[3]], strings.TrimSpace(flat[m[1]:end])})
		}
	}
	for _, it := range items {
		fmt.Fprintf(w, ".TP\n\\fB%s\\fR\n%s\n", it[0], escapeText(strings.TrimSuffix(it[1], ".")))
	}
}

// visibleFlags are the flags a page documents, sorted by name.
func visibleFlags(fs *pflag.FlagSet) []*pflag.Flag {
	var out []*pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && f.Name != "help" {
			out = append(out, f)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var valueNames = map[string]string{
	"string": "STRING", "stringArray": "STRING", "stringSlice": "LIST", "duration": "DURATION",
	"int": "N", "uint": "N", "float64": "NUMBER",
}

// flagEntry renders one option. Its default is the one its usage names
// ("default: sweep.kill_grace, 10s": the effective one, from
// haguard.yaml), else the flag's own when it is not a zero value.
func flagEntry(w *bytes.Buffer, f *pflag.Flag) {
	varname, usage := pflag.UnquoteUsage(f)
	if n, ok := valueNames[varname]; ok {
		varname = n
	}
	w.WriteString(".TP\n")
	if f.Shorthand != "" {
		fmt.Fprintf(w, "\\fB\\-%s\\fR, ", escape(f.Shorthand))
	}
	fmt.Fprintf(w, "\\fB\\-\\-%s\\fR", escape(f.Name))
	if varname != "" {
		fmt.Fprintf(w, " \\fI%s\\fR", escape(varname))
	}
	w.WriteString("\n")
	if !strings.Contains(usage, "default") && !zeroDefault(f) {
		usage += fmt.Sprintf(" (default: %s)", f.DefValue)
	}
	w.WriteString(escapeText(usage) + "\n")
}

func zeroDefault(f *pflag.Flag) bool {
	switch f.DefValue {
	case "", "0", "0s", "false", "[]":
		return true
	}
	return false
}

var envRef = regexp.MustCompile(`\benv ([A-Z][A-Z0-9_]+)`)

// environment lists the variables the page's flags read, from "(env X)"
// in their usage.
func environment(c *cobra.Command) [][2]string {
	seen := map[string]bool{}
	var out [][2]string
	for _, fs := range []*pflag.FlagSet{c.NonInheritedFlags(), c.InheritedFlags()} {
		fs.VisitAll(func(f *pflag.Flag) {
			for _, m := range envRef.FindAllStringSubmatch(f.Usage, -1) {
				if !seen[m[1]] {
					seen[m[1]] = true
					out = append(out, [2]string{m[1], "the default of --" + f.Name + " when the flag is not given"})
				}
			}
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// seeAlso lists the parent's and the sibling pages the annotation names,
// then the other pages and the installed docs it names.
func seeAlso(c *cobra.Command) string {
	var refs []string
	if c.HasParent() {
		refs = append(refs, fmt.Sprintf("\\fB%s\\fR(1)", escape(PageName(c.Parent()))))
	} else {
		for _, s := range Commands(c)[1:] {
			refs = append(refs, fmt.Sprintf("\\fB%s\\fR(1)", escape(PageName(s))))
		}
	}
	var docs []string
	for _, r := range strings.Split(c.Annotations[annotationSeeAlso], ",") {
		r = strings.TrimSpace(r)
		switch {
		case r == "" || r == "haguard(1)" && c.HasParent():
		case strings.HasSuffix(r, ".md"):
			docs = append(docs, "\\fI"+escape(DocDir+"/"+r)+"\\fR")
		default:
			name, sec, _ := strings.Cut(r, "(")
			refs = append(refs, fmt.Sprintf("\\fB%s\\fR(%s", escape(name), sec))
		}
	}
	return strings.Join(append(refs, docs...), ",\n")
}

// Source-tree paths in --help text, as the package installs them.
var installedPaths = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`\bdocs/([A-Za-z0-9_-]+\.(?:md|json))\b`), DocDir + "/$1"},
	{regexp.MustCompile(`\bdeploy/haguard\.service\b`), "/lib/systemd/system/haguard.service"},
	{regexp.MustCompile(`\bdeploy/haguard\.yaml\b`), "/etc/haguard/haguard.yaml"},
}

func installed(s string) string {
	for _, p := range installedPaths {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}

// escape makes s safe inside a roff line.
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}

// escapeText is filled text: source paths rewritten, backslashes escaped,
// no line starting with a control character.
func escapeText(s string) string {
	lines := strings.Split(installed(s), "\n")
	for i, l := range lines {
		lines[i] = escapeLine(strings.TrimSpace(l))
	}
	return strings.Join(lines, "\n")
}

// escapeLine keeps a line literal: backslashes and minus signs escaped, a
// leading . or ' guarded, source paths rewritten.
func escapeLine(l string) string {
	l = escape(installed(l)) // \- : a minus sign, so that options copy and paste
	if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
		l = `\&` + l
	}
	return l
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\(dq`) + `"` }
