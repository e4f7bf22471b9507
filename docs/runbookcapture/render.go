// Package runbookcapture keeps docs/runbook.md true: its test runs the
// seed 003 runbook in the test bed with the real binary, renders
// runbook.tmpl with what every command printed, and fails when the result
// differs from docs/runbook.md in anything but what changes from run to
// run (numbers, ids, column widths, log lines). Render and Normalize are
// here; the capture is in capture_test.go.
package runbookcapture

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
)

// Capture is the log the test writes: "RUN DIR", "LISTEN", "CONFIG:",
// "FILE name:" blocks and one "##### title" block per command with its
// stdout, "[stderr]" and "[exit N, Ts]".
type Capture struct{ raw string }

// ParseCapture reads a capture; the run directory becomes $RUN.
func ParseCapture(raw string) (*Capture, error) {
	m := regexp.MustCompile(`(?m)^RUN DIR (\S+)`).FindStringSubmatch(raw)
	if m == nil {
		return nil, errors.New("capture: no RUN DIR line")
	}
	return &Capture{raw: strings.ReplaceAll(raw, m[1], "$RUN")}, nil
}

// Render fills tmpl (runbook.tmpl) from the capture.
func Render(tmpl string, c *Capture) (string, error) {
	listen := regexp.MustCompile(`(?m)^LISTEN \S+:(\d+)$`).FindStringSubmatch(c.raw)
	if listen == nil {
		return "", errors.New("capture: no LISTEN line")
	}
	initial, err := c.block("CONFIG:\n", "\n\n\n")
	if err != nil {
		return "", err
	}
	var cc []string
	for _, n := range []string{"1", "2", "3"} {
		b, err := c.block("##### curl clustercheck db-node-"+n+"\n", "\n\n")
		if err != nil {
			return "", err
		}
		cc = append(cc, b)
	}
	var errs []error
	t, err := template.New("runbook").Funcs(template.FuncMap{
		"sec": func(title string, opts ...string) string {
			s, err := c.sec(title, opts...)
			errs = append(errs, err)
			return s
		},
		"filesec": func(name string) string {
			b, err := c.block("FILE "+name+":\n", "\n\n\n")
			errs = append(errs, err)
			return haproxyFence(b)
		},
	}).Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = t.Execute(&b, map[string]string{
		"ListenPort":   listen[1],
		"Initial":      haproxyFence(initial),
		"Clustercheck": strings.Join(cc, "\n"),
	})
	if err != nil {
		return "", err
	}
	return b.String(), errors.Join(errs...)
}

// block is the text after the line start (at the start of a line) up to
// end, or up to the next command block.
func (c *Capture) block(start, end string) (string, error) {
	i := lineIndex(c.raw, start)
	if i < 0 {
		return "", fmt.Errorf("capture: no %q", strings.TrimSpace(start))
	}
	rest := c.raw[i+len(start):]
	stop := len(rest)
	if j := strings.Index(rest, end); j >= 0 {
		stop = j
	}
	if j := lineIndex(rest, "##### "); j >= 0 && j < stop {
		stop = j
	}
	return strings.TrimRight(rest[:stop], "\n"), nil
}

// lineIndex finds s at the start of a line of text.
func lineIndex(text, s string) int {
	if strings.HasPrefix(text, s) {
		return 0
	}
	if i := strings.Index(text, "\n"+s); i >= 0 {
		return i + 1
	}
	return -1
}

var (
	minorFinding = regexp.MustCompile(`^    \$RUN/\S+: (info|warning) `)
	moreAttempts = regexp.MustCompile(`(?s)("attempts": \[\n\s*\{.*?\n\s*\}),\n.*?(\n\s*\],\n\s*"servers")`)
)

// sec is one command's block as a console fence. Options: keep_stderr
// (else the log lines are left out), strip_findings (info and warning
// findings left out), max_attempts (a probe's first attempt only).
func (c *Capture) sec(title string, opts ...string) (string, error) {
	body, err := c.block("##### "+title+"\n", "\nFILE ")
	if err != nil {
		return "", err
	}
	has := func(o string) bool {
		for _, x := range opts {
			if x == o {
				return true
			}
		}
		return false
	}
	var out []string
	skip, stripped := false, false
	for _, l := range strings.Split(body, "\n") {
		if l == "[stderr]" && !has("keep_stderr") {
			skip = true
			continue
		}
		if skip && strings.HasPrefix(l, "[exit") {
			skip = false
		}
		// A finding left out takes its fix line along.
		if fix := stripped && strings.HasPrefix(strings.TrimSpace(l), "fix: "); fix {
			continue
		}
		stripped = has("strip_findings") && minorFinding.MatchString(l)
		if skip || stripped {
			continue
		}
		out = append(out, l)
	}
	text := strings.Join(out, "\n")
	if has("max_attempts") {
		text = moreAttempts.ReplaceAllString(text, "$1,\n        ... 19 more attempts ...$2")
	}
	return "```console\n" + text + "\n```\n", nil
}

func haproxyFence(cfg string) string {
	return "```haproxy\n" + strings.ReplaceAll(cfg, "\t", "    ") + "\n```\n"
}

var (
	logLine = regexp.MustCompile(`^time=\S+ level=`)
	// Whether the old generation still drains when settle or a rollback
	// looks depends on timing, not on haguard.
	oldWorkers = regexp.MustCompile(`no old workers draining|old generation draining \([^)]*\)`)
	hexOrNum   = regexp.MustCompile(`\b[0-9a-f]*[0-9][0-9a-f]*\b`)
	// A transaction id's random suffix may hold no digit ("cdea"), which
	// hexOrNum then leaves alone.
	txnID     = regexp.MustCompile(`\b\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{4}\b`)
	number    = regexp.MustCompile(`[0-9]+`)
	dotted    = regexp.MustCompile(`#(?:\.#)+`) // 2.9, 127.0.0.1
	duration  = regexp.MustCompile(`# ?(?:ns|µs|us|ms|s|m|h)\b`)
	spaceRuns = regexp.MustCompile(`[ \t]+`)
)

// Normalize keeps what a reader relies on and drops what changes from
// run to run: numbers, hex ids and hashes become #, durations #d,
// column padding one space, slog lines (time=... level=...) go, and so
// does whether an old generation still drained at that moment. Lines
// are trimmed; blank lines are kept, so paragraphs still count.
func Normalize(doc string) []string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if logLine.MatchString(l) {
			continue
		}
		l = oldWorkers.ReplaceAllString(l, "old workers: either")
		if strings.TrimSpace(l) == "[x] old workers: either" {
			// The human report's own line for a draining old generation
			// (reload's settle): there or not, by the same timing.
			continue
		}
		l = txnID.ReplaceAllString(l, "#T#Z-#")
		l = hexOrNum.ReplaceAllString(l, "#")
		l = number.ReplaceAllString(l, "#")
		l = dotted.ReplaceAllString(l, "#")
		l = duration.ReplaceAllString(l, "#d")
		l = strings.TrimSpace(spaceRuns.ReplaceAllString(l, " "))
		out = append(out, l)
	}
	return out
}

// Diff is the first lines where want and got differ, with context, or ""
// when they are the same.
func Diff(want, got []string) string {
	n := min(len(want), len(got))
	i := 0
	for i < n && want[i] == got[i] {
		i++
	}
	if i == n && len(want) == len(got) {
		return ""
	}
	var b strings.Builder
	from := max(0, i-3)
	fmt.Fprintf(&b, "first difference at normalized line %d (of %d documented, %d rendered):\n", i+1, len(want), len(got))
	for j := from; j < min(len(want), i+4); j++ {
		fmt.Fprintf(&b, "  doc  %4d| %s\n", j+1, want[j])
	}
	for j := from; j < min(len(got), i+4); j++ {
		fmt.Fprintf(&b, "  real %4d| %s\n", j+1, got[j])
	}
	return b.String()
}
