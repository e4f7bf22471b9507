package validate

import (
	"fmt"
	"strings"
)

// How haguard splits a line: the way haproxy's own reader does
// (src/tools.c parse_line(), called by readcfgfile() with environment
// variables, double and single quotes, backslash escapes, '#' comments
// and '[*]' word expansion on), in 2.6 and 3.0 alike:
//
//   - words are separated by unquoted, unescaped white space (space, tab,
//     and also \v and \f); a '#' outside quotes starts a comment, even in
//     the middle of a word; a CR or LF ends the line;
//   - "double quotes" keep spaces, '#' and single quotes, and expand
//     environment variables: $NAME, ${NAME}, ${NAME-default} (the default
//     only replaces a variable that is not set, not an empty one) and
//     ${NAME[*]} (split into words at spaces); the pseudo-variables
//     .FILE, .LINE and .SECTION; \$ is a literal dollar;
//   - 'single quotes' keep everything as written;
//   - a backslash outside single quotes escapes a space, a backslash, '#',
//     and both quotes, and writes \t, \n, \r and \xNN; any other backslash
//     stays as written;
//   - $ outside double quotes is an ordinary character, and so is
//     ${NAME:-default} an error (no haproxy version knows ':-').
//
// Lines made only of printable ASCII without quotes, backslashes or '#'
// (nearly every line of a real config) are split on spaces and tabs
// without any of that machinery, as substrings of the line.
// FuzzTokenize checks that client-native agrees with that fast path, and
// FuzzTokenizeAgainstHAProxy that the real haproxy agrees with the rest.

// LexError is a line haproxy refuses to read; its message is haproxy's.
type LexError struct {
	// Col is the 1-based byte position haproxy reports.
	Col int
	Msg string
}

func (e *LexError) Error() string { return fmt.Sprintf("%s at position %d", e.Msg, e.Col) }

// The messages readcfgfile() prints for each parse_line() error.
const (
	lexQuote  = "unmatched quote"
	lexBrace  = "unmatched brace in environment variable name"
	lexName   = "forbidden first char in environment variable name"
	lexHex    = "truncated or invalid hexadecimal sequence"
	lexExpand = "truncated or invalid word expansion sequence"
)

// lexer reads lines for one target binary in one environment.
type lexer struct {
	// lookup returns a variable's value; ok is false when it is not set.
	// It answers for the pseudo-variables (".LINE") too.
	lookup func(name string) (value string, ok bool)
	// unsetEatsQuote is haproxy 2.9's reading (backported to some 2.4-2.8
	// releases): a variable that is not set, right before a closing double
	// quote, takes that quote and the spaces after it with it, so that
	// `"${UNSET}" x` reads as `x` instead of an empty word then `x`.
	unsetEatsQuote bool
}

// lexed is one line, split.
type lexed struct {
	words   []string
	comment string   // the text after an unquoted '#', without it
	unset   []string // variables read while not set and without a default
	literal []string // $NAME or ${NAME} outside double quotes: not expanded
	err     *LexError
	// outLen is the size of parse_line()'s output (the words and a NUL
	// after each), and defaultAt the position of the first "${NAME-"
	// brace (-1: none); see reading.outgrow.
	outLen    int
	defaultAt int
}

// tokenize splits a line with no environment at all; the parser uses
// lexer.split with the reading's environment.
func tokenize(line string) (words []string, comment string) {
	l := lexer{lookup: func(string) (string, bool) { return "", false }}
	r := l.split(line)
	return r.words, r.comment
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// isSpace is C's isspace() in the C locale.
func isSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || ((c|0x20) >= 'a' && (c|0x20) <= 'f') }

func hexVal(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return (c | 0x20) - 'a' + 10
}

// plainLine reports whether the fast path applies: printable ASCII and
// tabs only, and none of the characters that quote, escape or comment.
func plainLine(line string) bool {
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\t':
		case c < 0x20 || c > 0x7e:
			return false
		case c == '"' || c == '\'' || c == '\\' || c == '#' || c == '$':
			return false
		}
	}
	return true
}

// plainOutLen is parse_line()'s output size for a plain line: its
// characters after the leading blanks, one NUL per run of blanks, one
// at the end.
func plainOutLen(line string) int {
	n := 1
	i := 0
	for i < len(line) && isBlank(line[i]) {
		i++
	}
	for ; i < len(line); i++ {
		if !isBlank(line[i]) {
			n++
		} else if !isBlank(line[i-1]) {
			n++
		}
	}
	return n
}

// splitPlain splits a plain line on spaces and tabs, into substrings.
func splitPlain(line string) []string {
	n := 0
	for i := 0; i < len(line); i++ {
		if !isBlank(line[i]) && (i == 0 || isBlank(line[i-1])) {
			n++
		}
	}
	words := make([]string, 0, n)
	start := -1
	for i := 0; i <= len(line); i++ {
		if i == len(line) || isBlank(line[i]) {
			if start >= 0 {
				words = append(words, line[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return words
}

// split reads one line (without its LF).
func (l *lexer) split(line string) lexed {
	if plainLine(line) {
		return lexed{words: splitPlain(line), outLen: plainOutLen(line), defaultAt: -1}
	}
	return l.splitSlow(line)
}

// splitSlow is parse_line() itself.
func (l *lexer) splitSlow(line string) lexed {
	// readcfgfile() skips the leading white space, then hands the rest to
	// parse_line(); error positions count from the start of the line.
	lead := 0
	for lead < len(line) && isSpace(line[lead]) {
		lead++
	}
	s := line[lead:]
	out := lexed{defaultAt: -1}
	var words []string
	var cur strings.Builder
	sq, dq := false, false
	quoteAt := -1
	at := func(i int) byte { // a NUL past the end, as in C
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	fail := func(msg string, i int) lexed {
		out.err = &LexError{Col: lead + i + 1, Msg: msg}
		return out
	}
	endWord := func() {
		words = append(words, cur.String())
		cur.Reset()
	}
	i := 0
loop:
	for i < len(s) {
		c := s[i]
		switch {
		case c >= '-' && c < 0x80 && c != '\\':
			cur.WriteByte(c)
			i++
		case c == 0 || c == '\n' || c == '\r':
			break loop
		case c == '#' && !sq && !dq:
			out.comment = strings.TrimSpace(s[i+1:])
			break loop
		case c == '"' && !sq:
			dq = !dq
			quoteAt = openedAt(dq, i)
			i++
		case c == '\'' && !dq:
			sq = !sq
			quoteAt = openedAt(sq, i)
			i++
		case c == '\\' && !sq:
			next := at(i + 1)
			switch {
			case next == ' ' || next == '\\' || next == '#' || next == '\'' || next == '"':
				cur.WriteByte(next)
				i += 2
			case next == 't':
				cur.WriteByte('\t')
				i += 2
			case next == 'n':
				cur.WriteByte('\n')
				i += 2
			case next == 'r':
				cur.WriteByte('\r')
				i += 2
			case next == '$' && dq:
				cur.WriteByte('$')
				i += 2
			case next == 'x':
				if !isHex(at(i+2)) || !isHex(at(i+3)) {
					return fail(lexHex, i)
				}
				cur.WriteByte(hexVal(s[i+2])<<4 | hexVal(s[i+3]))
				i += 4
			default: // not an escape: the backslash stays
				cur.WriteByte('\\')
				i++
			}
		case isSpace(c) && !sq && !dq:
			for i < len(s) && isSpace(s[i]) {
				i++
			}
			endWord()
		case c == '$' && !dq && !sq:
			// Not expanded outside double quotes; note what looks like an
			// environment variable ($NAME in capitals, or ${...}).
			if n := at(i + 1); n == '{' || n == '_' || (n >= 'A' && n <= 'Z') {
				j := i + 1
				for j < len(s) && (s[j] == '{' || s[j] == '_' || isDigit(s[j]) || isAlpha(s[j])) {
					j++
				}
				if j < len(s) && s[j] == '}' {
					j++
				}
				out.literal = append(out.literal, s[i:j])
			}
			cur.WriteByte(c)
			i++
		case c == '$' && dq:
			var err *LexError
			i, err = l.expand(s, i, &cur, &words, &out, &dq, &quoteAt)
			if err != nil {
				err.Col += lead
				out.err = err
				return out
			}
		default:
			cur.WriteByte(c)
			i++
		}
	}
	endWord()
	if quoteAt >= 0 {
		return fail(lexQuote, quoteAt)
	}
	for _, w := range words {
		out.outLen += len(w) + 1 // parse_line() ends each word with a NUL
	}
	// A trailing empty word (after trailing spaces, or a final "") is
	// never seen by a keyword: haproxy's keywords stop at the first empty
	// argument, and 2.7+ does not count it at all.
	if n := len(words); n > 0 && words[n-1] == "" {
		words = words[:n-1]
	}
	out.words = words
	return out
}

// openedAt is where the open quote is: i when it just opened, else none.
func openedAt(open bool, i int) int {
	if open {
		return i
	}
	return -1
}

// expand reads a variable reference at s[i] == '$' inside double quotes
// and writes its value; it returns the index after the reference.
func (l *lexer) expand(s string, i int, cur *strings.Builder, words *[]string, out *lexed, dq *bool, quoteAt *int) (int, *LexError) {
	at := func(i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	i++
	brace := -1
	if at(i) == '{' {
		brace = i
		i++
	}
	if c := at(i); !isAlpha(c) && c != '_' && c != '.' {
		return i, &LexError{Col: i + 1, Msg: lexName}
	}
	start := i
	if s[i] == '.' {
		i++
	}
	for c := at(i); isAlpha(c) || isDigit(c) || c == '_'; c = at(i) {
		i++
	}
	name := s[start:i]
	pseudo := name[0] == '.'
	if pseudo && name != ".LINE" && name != ".FILE" && name != ".SECTION" {
		return i, &LexError{Col: start + 1, Msg: lexName}
	}
	value, ok := l.lookup(name)
	wordExpand := false
	if at(i) == '[' && brace >= 0 {
		if at(i+1) != '*' || at(i+2) != ']' {
			return i, &LexError{Col: i + 1, Msg: lexExpand}
		}
		wordExpand = true
		i += 3
	}
	if brace >= 0 {
		if at(i) == '-' {
			if out.defaultAt < 0 {
				out.defaultAt = brace
			}
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return i, &LexError{Col: brace + 1, Msg: lexBrace}
			}
			if !ok {
				value, ok = s[i+1:i+end], true
			}
			i += end
		} else if at(i) != '}' {
			return i, &LexError{Col: brace + 1, Msg: lexBrace}
		}
		i++ // the closing brace
	}
	if !ok {
		out.unset = append(out.unset, name)
		if l.unsetEatsQuote && !pseudo && at(i) == '"' {
			i++
			for i < len(s) && isSpace(s[i]) {
				i++
			}
			*dq, *quoteAt = false, -1
		}
		return i, nil
	}
	for j := 0; j < len(value); j++ {
		if wordExpand && isSpace(value[j]) {
			*words = append(*words, cur.String())
			cur.Reset()
			for j+1 < len(value) && isSpace(value[j+1]) {
				j++
			}
			continue
		}
		cur.WriteByte(value[j])
	}
	return i, nil
}

// rawWords splits a line for a raw reading (ReadOptions.Raw): at
// unquoted, unescaped white space, a '#' outside quotes starting the
// comment, every word kept as written, quotes and escapes included, and
// no variable expanded.
func rawWords(line string) (words []string, comment string) {
	var b strings.Builder
	inWord, squote, dquote := false, false, false
	end := func() {
		if inWord {
			words = append(words, b.String())
			b.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && !squote && i+1 < len(line):
			b.WriteByte(c)
			b.WriteByte(line[i+1])
			inWord = true
			i++
		case c == '\'' && !dquote:
			squote = !squote
			b.WriteByte(c)
			inWord = true
		case c == '"' && !squote:
			dquote = !dquote
			b.WriteByte(c)
			inWord = true
		case !squote && !dquote && (c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n'):
			end()
		case !squote && !dquote && c == '#':
			end()
			return words, strings.TrimSpace(line[i+1:])
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	end()
	return words, ""
}
