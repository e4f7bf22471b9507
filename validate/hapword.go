package validate

import "strings"

// haproxyWord reads one word of a line the way haproxy's parse_line does
// (src/tools.c, 2.6 and 3.0): quotes are removed, backslash escapes
// decoded (\\ \<space> \# \' \" \$ \t \n \r \xHH; a \ before anything
// else stays), and a NUL ends the word, as it ends a C string. A word
// that quotes its keyword ("lua-load"), splits it (lu"a-lo"ad) or
// escapes it (lua-loa\x64) is the keyword to haproxy, and so it is to
// the policy.
//
// env reports an environment variable reference ($NAME, ${NAME},
// ${NAME-default}, ${NAME[*]}, $.FILE), whose value only haproxy knows:
// it is left as written. It is reported wherever the '$' stands outside
// single quotes, even where haproxy would not expand it (outside double
// quotes): the policy would rather refuse a literal '$' than miss a
// variable. The function is safe to apply to a word a tokenizer has
// already unquoted: decoding twice can only make the policy see more.
func haproxyWord(w string) (word string, env bool) {
	if !strings.ContainsAny(w, "\"'\\$\x00") {
		return w, false
	}
	var b strings.Builder
	squote, dquote := false, false
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c == 0:
			return b.String(), env
		case c == '"' && !squote:
			dquote = !dquote
		case c == '\'' && !dquote:
			squote = !squote
		case c == '\\' && !squote && i+1 < len(w):
			n := w[i+1]
			switch n {
			case ' ', '\\', '#', '\'', '"', '$':
				b.WriteByte(n)
				i++
			case 't':
				b.WriteByte('\t')
				i++
			case 'n':
				b.WriteByte('\n')
				i++
			case 'r':
				b.WriteByte('\r')
				i++
			case 'x':
				if i+3 < len(w) && isHex(w[i+2]) && isHex(w[i+3]) {
					v := hexVal(w[i+2])<<4 | hexVal(w[i+3])
					if v == 0 {
						return b.String(), env
					}
					b.WriteByte(v)
					i += 3
				} else {
					b.WriteByte(c)
				}
			default:
				b.WriteByte(c)
			}
		case c == '$' && !squote && i+1 < len(w) && isEnvStart(w[i+1]):
			env = true
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), env
}

// hasEnvRef reports whether s names an environment variable.
func hasEnvRef(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '$' && isEnvStart(s[i+1]) {
			return true
		}
	}
	return false
}

func isEnvStart(c byte) bool {
	return c == '{' || c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// haproxyWords reads every word of a line (haproxyWord); the slice is
// words itself when nothing changes.
func haproxyWords(words []string) (out []string, env bool) {
	out = words
	for i, w := range words {
		d, e := haproxyWord(w)
		env = env || e
		if d != w {
			if &out[0] == &words[0] {
				out = append([]string(nil), words...)
			}
			out[i] = d
		}
	}
	return out, env
}
