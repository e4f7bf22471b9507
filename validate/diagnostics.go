package validate

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Diagnostic is one ALERT or WARNING line of `haproxy -c`, read the way
// `nginx -t` prints its own: where, how bad, what. File and Line are
// empty when haproxy named no line (a proxy that lacks a backend, a
// missing file).
type Diagnostic struct {
	File     string   `json:"file,omitempty"`
	Line     int      `json:"line,omitempty"`
	Severity Severity `json:"severity"` // error (ALERT) or warning
	Message  string   `json:"message"`
	// Detail is haproxy's explanation on the "   | " lines that follow,
	// joined into one.
	Detail string `json:"detail,omitempty"`
}

// String is "file:line: error: message", or "error: message" without a
// position.
func (d Diagnostic) String() string {
	var b strings.Builder
	if d.File != "" {
		b.WriteString(d.File)
		if d.Line > 0 {
			b.WriteString(":" + strconv.Itoa(d.Line))
		}
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%s: %s", d.Severity, d.Message)
	return b.String()
}

// diagPrefix is haproxy's line head: the level, then the pid in 2.x and
// 3.x ("[ALERT]    (6406) : "), or a date and pid in 1.x and early 2.x
// ("[ALERT] 123/045612 (6406) : "), then, from 2.4 on, the context
// ("config : ").
var diagPrefix = regexp.MustCompile(`^\[(ALERT|WARNING)\]\s*(?:\d+/\d+\s*)?(?:\(\d+\)\s*)?:\s*(?:config\s*:\s*)?`)

// diagPos is where haproxy names the line: "parsing [file:12] : " or
// "[file:12] : ".
var diagPos = regexp.MustCompile(`^(?:parsing\s+)?\[([^\]]+):(\d+)\]\s*:\s*`)

// ParseDiagnostics reads haproxy's output into its ALERT (error) and
// WARNING lines, in order, each once. NOTICE lines and haproxy's closing
// summaries ("Error(s) found in configuration file : x", "Fatal errors
// found in configuration.") are left out when a line says more; they are
// kept when nothing else explains the refusal.
func ParseDiagnostics(out string) []Diagnostic {
	var ds, summaries []Diagnostic
	seen := map[Diagnostic]bool{}
	last := -1 // index in ds of the diagnostic a "   | " line continues
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if more, ok := strings.CutPrefix(l, "| "); ok || l == "|" {
			if last >= 0 {
				ds[last].Detail = strings.TrimSpace(ds[last].Detail + " " + strings.TrimSpace(more))
			}
			continue
		}
		last = -1
		m := diagPrefix.FindStringSubmatchIndex(l)
		if m == nil {
			continue
		}
		d := Diagnostic{Severity: SevError}
		if l[m[2]:m[3]] == "WARNING" {
			d.Severity = SevWarning
		}
		rest := l[m[1]:]
		if p := diagPos.FindStringSubmatch(rest); p != nil {
			d.File, rest = p[1], rest[len(p[0]):]
			d.Line, _ = strconv.Atoi(p[2])
		}
		d.Message = strings.TrimSpace(rest)
		if d.Message == "" || seen[d] {
			continue
		}
		seen[d] = true
		if d.File == "" && isSummary(d.Message) {
			summaries = append(summaries, d)
			continue
		}
		ds = append(ds, d)
		last = len(ds) - 1
	}
	if !hasError(ds) {
		ds = append(ds, summaries...)
	}
	return ds
}

func isSummary(msg string) bool {
	return strings.HasPrefix(msg, "Error(s) found in configuration file") ||
		strings.HasPrefix(msg, "Fatal errors found in configuration")
}

func hasError(ds []Diagnostic) bool {
	for _, d := range ds {
		if d.Severity == SevError {
			return true
		}
	}
	return false
}

// CountDiagnostics counts ds by severity.
func CountDiagnostics(ds []Diagnostic) (errors, warnings int) {
	for _, d := range ds {
		if d.Severity == SevError {
			errors++
		} else {
			warnings++
		}
	}
	return errors, warnings
}

// FirstError is the first error of ds, else the first diagnostic; ok is
// false when there is none.
func FirstError(ds []Diagnostic) (Diagnostic, bool) {
	for _, d := range ds {
		if d.Severity == SevError {
			return d, true
		}
	}
	if len(ds) > 0 {
		return ds[0], true
	}
	return Diagnostic{}, false
}
