package validate

import (
	"slices"
	"testing"

	"github.com/haproxytech/client-native/v5/config-parser/common"
)

// FuzzTokenize checks the fast path (plain lines) against client-native's
// tokenizer, which agrees with haproxy on such lines, and against our own
// slow path.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{
		"    server s1 127.0.0.1:3306 check port 9200",
		"\tbind\t*:80  ssl crt /x.pem",
		"timeout client 50s # comment",
		`http-request set-header X "a b"`,
		"  ", "", "a\\ b", "x\x00y", "bind $ADDR:80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, comment := tokenize(line)
		if !plainLine(line) {
			return // the slow path: FuzzTokenizeAgainstHAProxy
		}
		cw, cc := common.StringSplitWithCommentIgnoreEmpty(line)
		if !slices.Equal(words, cw) || comment != cc {
			t.Fatalf("tokenize(%q) = %q %q, client-native says %q %q", line, words, comment, cw, cc)
		}
		// The slow path reads a plain line the same way.
		l := lexer{lookup: func(string) (string, bool) { return "", false }}
		if slow := l.splitSlow(line); !slices.Equal(slow.words, words) || slow.err != nil {
			t.Fatalf("slow path %q = %q %v, fast path %q", line, slow.words, slow.err, words)
		}
	})
}

func TestTokenizeLikeHAProxy(t *testing.T) {
	env := map[string]string{"T": "7s", "E": "", "L": " a  b ", "HAPROXY_LOCALPEER": "vm"}
	cases := []struct {
		line    string
		words   []string
		comment string
		unset   []string
		err     string // the LexError's message, with its position
		eats    bool   // read by a target whose unset variables eat their quote
	}{
		{line: `timeout client "5s"`, words: []string{"timeout", "client", "5s"}},
		{line: `timeout client '5s'`, words: []string{"timeout", "client", "5s"}},
		{line: `timeout client \5s`, words: []string{"timeout", "client", `\5s`}},
		{line: `timeout client 5\s`, words: []string{"timeout", "client", `5\s`}},
		{line: `timeout client "5"s`, words: []string{"timeout", "client", "5s"}},
		{line: `timeout client "\x35s"`, words: []string{"timeout", "client", "5s"}},
		{line: `timeout client "${T-5s}"`, words: []string{"timeout", "client", "7s"}},
		{line: `timeout client "${U-5s}"`, words: []string{"timeout", "client", "5s"}},
		{line: `timeout client "${E-5s}" x`, words: []string{"timeout", "client", "", "x"}}, // empty is set
		{line: `timeout client "$T"`, words: []string{"timeout", "client", "7s"}},
		{line: `timeout client "$T-1"`, words: []string{"timeout", "client", "7s-1"}},
		{line: `timeout client $T`, words: []string{"timeout", "client", "$T"}},    // no expansion outside quotes
		{line: `timeout client '$T'`, words: []string{"timeout", "client", "$T"}},  // nor in single quotes
		{line: `timeout client "\$T"`, words: []string{"timeout", "client", "$T"}}, // escaped
		{line: `timeout client "${T:-5s}"`, err: lexBrace + " at position 18"},     // no ':-' in haproxy
		{line: `timeout client "${T"`, err: lexBrace + " at position 18"},          // unterminated brace
		{line: `timeout client "$1"`, err: lexName + " at position 18"},            // bad name
		{line: `timeout client "${.FOO}"`, err: lexName + " at position 19"},       // unknown pseudo-variable
		{line: `timeout client "5s`, err: lexQuote + " at position 16"},            // open quote
		{line: `timeout client "\x3"`, err: lexHex + " at position 17"},            // bad hex
		{line: `  a "${L[*}"`, err: lexExpand + " at position 9"},                  // bad expansion
		{line: `a "${L[*]}" b`, words: []string{"a", "", "a", "b", "", "b"}},       // split at spaces
		{line: `a "x${L[*]}y"`, words: []string{"a", "x", "a", "b", "y"}},          // glued to its neighbours
		{line: `a "${U}" b`, words: []string{"a", "", "b"}, unset: []string{"U"}},  // 2.6: an empty word
		{line: `a "${U}" b`, words: []string{"a", "b"}, unset: []string{"U"}, eats: true},
		{line: `a "x${U}" b`, words: []string{"a", "xb"}, unset: []string{"U"}, eats: true}, // 2.9: glued
		{line: `a "$U" b`, words: []string{"a", "", "b"}, unset: []string{"U"}},
		{line: `a "${.LINE}" "${.FILE}" "${.SECTION-none}"`, words: []string{"a", "3", "f.cfg", "none"}},
		{line: `a#b c`, words: []string{"a"}, comment: "b c"},
		{line: `a\#b c # x`, words: []string{"a#b", "c"}, comment: "x"},
		{line: `a "#b" '#c'`, words: []string{"a", "#b", "#c"}},
		{line: `a"b c"d 'e f'g`, words: []string{"ab cd", "e fg"}},
		{line: `a\ b \\ \' \"`, words: []string{"a b", `\`, `'`, `"`}},
		{line: `a "\t\n\r"`, words: []string{"a", "\t\n\r"}},
		{line: "a\vb\fc", words: []string{"a", "b", "c"}},
		{line: "a\rb c", words: []string{"a"}}, // a CR ends the line
		{line: "a \r b", words: []string{"a", "b"}},
		{line: `a "" b`, words: []string{"a", "", "b"}},
		{line: `a b ""`, words: []string{"a", "b"}},
		{line: "a b   ", words: []string{"a", "b"}},
		{line: "a \xe9t\xe9", words: []string{"a", "\xe9t\xe9"}},
		{line: `user "$HAPROXY_LOCALPEER"`, words: []string{"user", "vm"}},
	}
	for _, c := range cases {
		l := lexer{unsetEatsQuote: c.eats, lookup: func(n string) (string, bool) {
			switch n {
			case ".LINE":
				return "3", true
			case ".FILE":
				return "f.cfg", true
			case ".SECTION":
				return "", false
			}
			v, ok := env[n]
			return v, ok
		}}
		got := l.split(c.line)
		if c.err != "" {
			if got.err == nil || got.err.Error() != c.err {
				t.Errorf("%q: error %v, want %q", c.line, got.err, c.err)
			}
			continue
		}
		if got.err != nil || !slices.Equal(got.words, c.words) || got.comment != c.comment || !slices.Equal(got.unset, c.unset) {
			t.Errorf("%q (eats %v) = %q comment %q unset %q err %v; want %q comment %q unset %q",
				c.line, c.eats, got.words, got.comment, got.unset, got.err, c.words, c.comment, c.unset)
		}
	}
}
