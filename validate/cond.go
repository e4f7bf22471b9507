package validate

import (
	"errors"
	"fmt"
	"strings"
)

// Conditional blocks: .if/.elif/.else/.endif (haproxy 2.4+), read as
// src/cfgcond.c does. The words after .if are joined with single spaces
// into one expression made of:
//
//   - integers (C strtol, any base): 0 is false, anything else true;
//   - predicates with arguments in parentheses: defined(), feature(),
//     streq(), strneq(), version_atleast(), version_before() (2.4+),
//     openssl_version_atleast(), openssl_version_before(),
//     ssllib_name_startswith() (2.5+), strstr(), enabled() (2.8+);
//   - '!' negation, '(' ')' grouping, '&&' binding tighter than '||'.
//
// A predicate the target does not know, or a malformed expression, is an
// error that makes haproxy refuse the whole configuration.

// condEnv is what a condition reads.
type condEnv struct {
	target *Target
	lookup func(name string) (string, bool) // the environment (not pseudo-variables)
	// enabled answers enabled(OPTION) from the global keywords read so far.
	enabled func(opt string) bool
}

// predicate is one known predicate: its name, number of arguments, and
// the first haproxy version that has it.
type predicate struct {
	name  string
	nargs int
	since string
}

var predicates = []predicate{
	{"defined", 1, "2.4"}, {"feature", 1, "2.4"}, {"streq", 2, "2.4"}, {"strneq", 2, "2.4"},
	{"strstr", 2, "2.8-dev5"}, {"version_atleast", 1, "2.4"}, {"version_before", 1, "2.4"},
	{"openssl_version_atleast", 1, "2.5-dev5"}, {"openssl_version_before", 1, "2.5-dev5"},
	{"ssllib_name_startswith", 1, "2.5-dev10"}, {"enabled", 1, "2.8-dev5"},
}

// condParser parses and evaluates one expression. haproxy parses the
// whole expression first (a syntax error anywhere fails it), then
// evaluates it with short-circuits; so does evalCondition.
type condParser struct {
	s   string
	i   int
	env condEnv
}

// condNode is a parsed term or sub-expression.
type condNode struct {
	neg   bool
	kind  byte // 'v' constant, 'p' predicate, '(' group, '&' and, '|' or
	val   bool
	pred  string
	args  []string
	left  *condNode
	right *condNode
}

// evalCondition evaluates the text of a .if/.elif line (its words joined
// with spaces). An empty condition is false.
func evalCondition(text string, env condEnv) (bool, error) {
	if text == "" {
		return false, nil
	}
	p := &condParser{s: text, env: env}
	n, err := p.expr(maxCondDepth)
	if err != nil {
		return false, err
	}
	p.skipBlanks()
	if p.i < len(p.s) {
		return false, fmt.Errorf("unexpected character '%c' at the end of conditional expression '%s'", p.s[p.i], text)
	}
	return p.eval(n)
}

// maxCondDepth bounds nesting as MAX_CFG_RECURSION does.
const maxCondDepth = 1024

func (p *condParser) skipBlanks() {
	for p.i < len(p.s) && isBlank(p.s[p.i]) {
		p.i++
	}
}

func (p *condParser) expr(depth int) (*condNode, error) {
	if depth <= 0 {
		return nil, fmt.Errorf("unparsable conditional expression '%s'", p.s[p.i:])
	}
	left, err := p.and(depth - 1)
	if err != nil {
		return nil, err
	}
	p.skipBlanks()
	if !strings.HasPrefix(p.s[p.i:], "||") {
		return left, nil
	}
	p.i += 2
	p.skipBlanks()
	right, err := p.expr(depth - 1)
	if err != nil {
		return nil, err
	}
	return &condNode{kind: '|', left: left, right: right}, nil
}

func (p *condParser) and(depth int) (*condNode, error) {
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("unparsable conditional sub-expression '%s'", p.s[p.i:])
	}
	left, err := p.term(depth - 1)
	if err != nil {
		return nil, err
	}
	p.skipBlanks()
	if !strings.HasPrefix(p.s[p.i:], "&&") {
		return left, nil
	}
	p.i += 2
	p.skipBlanks()
	right, err := p.and(depth - 1)
	if err != nil {
		return nil, err
	}
	return &condNode{kind: '&', left: left, right: right}, nil
}

func (p *condParser) term(depth int) (*condNode, error) {
	p.skipBlanks()
	start := p.i
	if p.i >= len(p.s) || depth <= 0 {
		return nil, fmt.Errorf("unparsable conditional expression '%s'", p.s[start:])
	}
	t := &condNode{}
	for p.i < len(p.s) && p.s[p.i] == '!' {
		t.neg = !t.neg
		p.i++
		p.skipBlanks()
	}
	if v, n := strtol(p.s[p.i:], 0); n > 0 {
		t.kind, t.val = 'v', v != 0
		p.i += n
		return t, nil
	}
	if p.i < len(p.s) && p.s[p.i] == '(' {
		p.i++
		p.skipBlanks()
		e, err := p.expr(depth - 1)
		if err != nil {
			return nil, err
		}
		p.skipBlanks()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return nil, fmt.Errorf("expected ')' after conditional expression '%s'", p.s[start:])
		}
		p.i++
		p.skipBlanks()
		t.kind, t.left = '(', e
		return t, nil
	}
	word := p.s[p.i:]
	if k := strings.IndexAny(word, " ("); k >= 0 {
		word = word[:k]
	}
	for _, pr := range predicates {
		if pr.name != word {
			continue
		}
		if p.env.target.versionCompare(pr.since) > 0 {
			break // newer than the target: haproxy does not know it
		}
		args, n, err := condArgs(p.s[p.i+len(word):], pr.nargs)
		if err != nil {
			return nil, fmt.Errorf("%v in argument %d of predicate '%s' used in conditional expression", err, len(args), pr.name)
		}
		p.i += len(word) + n
		t.kind, t.pred, t.args = 'p', pr.name, args
		return t, nil
	}
	return nil, fmt.Errorf("unparsable conditional expression '%s'", p.s[start:])
}

// condArgs reads "(a,b)" as make_arg_list() does for string arguments:
// quotes and backslashes have their own level here. It returns the
// arguments and the bytes read.
func condArgs(s string, nargs int) ([]string, int, error) {
	if s == "" || s[0] != '(' {
		// Without parentheses, make_arg_list() still reads one empty
		// argument: "defined" is defined("").
		if nargs == 1 {
			return []string{""}, 0, nil
		}
		return nil, 0, fmt.Errorf("missing arguments (got 1/%d), type 'string' expected", nargs)
	}
	i := 1
	var args []string
	for len(args) < nargs {
		var b strings.Builder
		sq, dq := false, false
		for i < len(s) {
			c := s[i]
			if c == '"' && !sq {
				dq = !dq
				i++
				continue
			}
			if c == '\'' && !dq {
				sq = !sq
				i++
				continue
			}
			if c == '\\' && !sq {
				if i+1 >= len(s) {
					return args, i, errors.New("unmatched quote or trailing backslash")
				}
				switch s[i+1] {
				case '\\', ' ', '"', '\'':
					b.WriteByte(s[i+1])
					i += 2
				case 'r':
					b.WriteByte('\r')
					i += 2
				case 'n':
					b.WriteByte('\n')
					i += 2
				case 't':
					b.WriteByte('\t')
					i += 2
				default:
					b.WriteByte('\\')
					i++
				}
				continue
			}
			if !sq && !dq && (c == ',' || c == ')') {
				break
			}
			b.WriteByte(c)
			i++
		}
		args = append(args, b.String())
		if i >= len(s) || s[i] == ')' || len(args) >= nargs {
			break
		}
		i++ // the comma
	}
	if len(args) < nargs {
		return args, i, fmt.Errorf("missing arguments (got %d/%d), type 'string' expected", len(args), nargs)
	}
	if i >= len(s) || s[i] != ')' {
		if i < len(s) {
			return args, i, fmt.Errorf("expected ')' before '%s'", s[i:])
		}
		return args, i, errors.New("expected ')'")
	}
	return args, i + 1, nil
}

func (p *condParser) eval(n *condNode) (bool, error) {
	var v bool
	var err error
	switch n.kind {
	case 'v':
		v = n.val
	case '(':
		v, err = p.eval(n.left)
	case '|':
		if v, err = p.eval(n.left); err == nil && !v {
			v, err = p.eval(n.right)
		}
		return v, err
	case '&':
		if v, err = p.eval(n.left); err == nil && v {
			v, err = p.eval(n.right)
		}
		return v, err
	case 'p':
		v, err = p.pred(n.pred, n.args)
	}
	if err != nil {
		return false, err
	}
	return v != n.neg, nil
}

func (p *condParser) pred(name string, a []string) (bool, error) {
	t := p.env.target
	switch name {
	case "defined":
		_, ok := p.env.lookup(a[0])
		return ok, nil
	case "feature":
		return t.hasFeature(a[0]), nil
	case "streq":
		return a[0] == a[1], nil
	case "strneq":
		return a[0] != a[1], nil
	case "strstr":
		return strings.Contains(a[0], a[1]), nil
	case "version_atleast":
		return t.versionCompare(a[0]) <= 0, nil
	case "version_before":
		return t.versionCompare(a[0]) > 0, nil
	case "openssl_version_atleast", "openssl_version_before":
		c, ok := t.opensslCompare(a[0])
		if !ok {
			return false, fmt.Errorf("predicate '%s' cannot be evaluated: no OpenSSL version known for the target or '%s' does not parse", name, a[0])
		}
		if name == "openssl_version_atleast" {
			return c <= 0, nil
		}
		return c > 0, nil
	case "ssllib_name_startswith":
		return t.SSLLib != "" && strings.HasPrefix(t.SSLLib, a[0]), nil
	case "enabled":
		return p.env.enabled != nil && p.env.enabled(a[0]), nil
	}
	return false, fmt.Errorf("internal error: unhandled conditional expression predicate '%s'", name)
}

// strtol reads a C long at the start of s in base (0: 0x hex, 0 octal,
// else decimal) after optional blanks and a sign, and returns it and the
// bytes read (0: no number).
func strtol(s string, base int) (int64, int) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	if base == 0 {
		switch {
		case i+1 < len(s) && s[i] == '0' && (s[i+1]|0x20) == 'x' && i+2 < len(s) && isHex(s[i+2]):
			base, i = 16, i+2
		case i < len(s) && s[i] == '0':
			base = 8
		default:
			base = 10
		}
	}
	digits := i
	var v int64
	const maxLong = 1<<63 - 1
	for i < len(s) {
		d := int64(-1)
		switch c := s[i]; {
		case isDigit(c):
			d = int64(c - '0')
		case isAlpha(c):
			d = int64(c|0x20-'a') + 10
		}
		if d < 0 || d >= int64(base) {
			break
		}
		if v <= (maxLong-d)/int64(base) {
			v = v*int64(base) + d
		} else {
			v = maxLong
		}
		i++
	}
	if i == digits {
		return 0, 0
	}
	if neg {
		v = -v
	}
	return v, i
}
