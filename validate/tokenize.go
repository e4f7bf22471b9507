package validate

import "github.com/haproxytech/client-native/v5/config-parser/common"

// tokenize splits one configuration line into words and a comment.
//
// Lines made only of printable ASCII without quotes, backslashes or '#'
// (nearly every line of a real config) are split on spaces and tabs here,
// as substrings of the line: one allocation instead of one per character.
// Every other line goes to client-native's tokenizer, which owns the
// quoting, escaping and comment rules. FuzzTokenize checks that both agree
// wherever the fast path applies.
func tokenize(line string) (words []string, comment string) {
	if !plainLine(line) {
		return common.StringSplitWithCommentIgnoreEmpty(line)
	}
	n := 0
	for i := 0; i < len(line); i++ {
		if !isBlank(line[i]) && (i == 0 || isBlank(line[i-1])) {
			n++
		}
	}
	words = make([]string, 0, n)
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
	return words, ""
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func plainLine(line string) bool {
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\t':
		case c < 0x20 || c > 0x7e:
			return false
		case c == '"' || c == '\'' || c == '\\' || c == '#':
			return false
		}
	}
	return true
}
