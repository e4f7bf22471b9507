package validate

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// What an untrusted check may show of haproxy's output.
//
// haproxy quotes the files it reads in its errors: an ACL file's bad line
// ("'root:$y$...' is not a valid IPv4 or IPv6 address at line 1 of file
// '/etc/shadow'"), a map's, a Lua file's tokens ("syntax error near
// 'x'"), and Lua can print anything. The confined check cannot read
// root's files at all; this filter makes sure that no response carries
// content from any file other than the candidate itself, also from the
// files it can read:
//
//   - only haproxy's own message lines are kept ("[ALERT] (pid) : ...",
//     "Configuration file is valid"); anything else (a continuation line,
//     what Lua prints) is withheld;
//   - a message located on a candidate line that names a file (FileRefs:
//     acl -f, map(), crt, lua-load, errorfile...) is replaced by a note:
//     haproxy may be quoting that file;
//   - a message located in another file (a crt-list, a Lua file) is
//     replaced by a note;
//   - when the candidate loads Lua, a message with no location is withheld
//     (Lua may print it), but the summary lines;
//   - in what is kept, a quoted span ('...', "...", <...>) that is not
//     text of the candidate is redacted, unless it is a bare keyword
//     ('option tcplog').

var (
	msgLine   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\[(NOTICE|WARNING|ALERT|DIAG)\] +\(\d+\) : (.*)$`) })
	msgLoc    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`parsing \[([^\]]+):(\d+)\]`) })
	quoted    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`'[^']*'|"[^"]*"|<[^<>]*>`) })
	bareWords = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9._-]*( [a-z][a-z0-9._-]*)?$`) })
	// Lines haproxy prints on its own, which hold no file content.
	fixedLines = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(Configuration file is valid|Warnings were found\.|)$`)
	})
	safeNotice = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(haproxy version is [^ ]+|path to executable is .*)$`)
	})
	summary = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^config : (Error\(s\) found in configuration file : .*|Fatal errors found in configuration\.)$`)
	})
)

// outputFilter knows which candidate lines name files.
type outputFilter struct {
	bodies  map[string][]byte
	refs    map[Pos][]string // candidate line -> the files it names (raw)
	lua     bool
	noModel bool // the candidate did not parse: withhold every located message
}

func (in *inputs) filter(out string) (string, int) {
	cfg := in.o.Config
	if cfg == nil {
		cfg, _ = Parse(in.o.Files...)
	}
	return newOutputFilter(cfg, in.bodies).apply(out)
}

// newOutputFilter knows the candidate's bytes and model; a nil model (the
// candidate did not parse) withholds every located message.
func newOutputFilter(cfg *Config, bodies map[string][]byte) *outputFilter {
	f := &outputFilter{bodies: bodies, refs: map[Pos][]string{}, noModel: cfg == nil}
	if cfg == nil {
		return f
	}
	for _, r := range FileRefs(cfg) {
		if !r.Optional {
			f.refs[r.Pos] = append(f.refs[r.Pos], r.Raw)
		}
		if r.Kind == "lua" || r.Kind == "lua-path" {
			f.lua = true
		}
	}
	return f
}

func (f *outputFilter) apply(out string) (string, int) {
	var b strings.Builder
	withheld := 0
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.HasPrefix(l, "haguard: ") || fixedLines().MatchString(l) {
			b.WriteString(l + "\n")
			continue
		}
		m := msgLine().FindStringSubmatch(l)
		if m == nil {
			withheld++
			continue
		}
		kept, ok := f.message(m[2])
		if !ok {
			withheld++
		}
		if kept != "" {
			b.WriteString(l[:len(l)-len(m[2])] + kept + "\n")
		}
	}
	if withheld > 0 {
		fmt.Fprintf(&b, "haguard: %d line(s) of haproxy's output withheld: they may quote a file other than the candidate (run `haguard check` on the host to read them)\n", withheld)
	}
	return b.String(), withheld
}

// message returns what may be shown of one message's text ("" for
// nothing) and false when something was withheld.
func (f *outputFilter) message(text string) (string, bool) {
	if safeNotice().MatchString(text) || summary().MatchString(text) {
		return text, true
	}
	loc := msgLoc().FindStringSubmatch(text)
	if loc == nil {
		if f.lua {
			return "", false
		}
		return f.redact(text), true
	}
	file, line := loc[1], loc[2]
	n, _ := strconv.Atoi(line)
	if _, own := f.bodies[file]; !own {
		return "config : haguard withheld a message about another file than the candidate", false
	}
	if files, ok := f.refs[Pos{File: file, Line: n}]; ok || f.noModel {
		return fmt.Sprintf("config : parsing [%s:%s] : haguard withheld haproxy's message: this line loads %s, which it may quote",
			file, line, strings.Join(files, ", ")), false
	}
	return f.redact(text), true
}

// redact replaces each quoted span that is not text of the candidate.
func (f *outputFilter) redact(text string) string {
	return quoted().ReplaceAllStringFunc(text, func(q string) string {
		inner := q[1 : len(q)-1]
		if inner == "" || bareWords().MatchString(inner) {
			return q
		}
		for _, body := range f.bodies {
			if bytes.Contains(body, []byte(inner)) {
				return q
			}
		}
		return q[:1] + "(withheld)" + q[len(q)-1:]
	})
}
