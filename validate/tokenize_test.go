package validate

import (
	"slices"
	"testing"

	"github.com/haproxytech/client-native/v5/config-parser/common"
)

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{
		"    server s1 127.0.0.1:3306 check port 9200",
		"\tbind\t*:80  ssl crt /x.pem",
		"timeout client 50s # comment",
		`http-request set-header X "a b"`,
		"  ", "", "a\\ b", "x\x00y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, comment := tokenize(line)
		if !plainLine(line) {
			return // handled by client-native itself
		}
		cw, cc := common.StringSplitWithCommentIgnoreEmpty(line)
		if !slices.Equal(words, cw) || comment != cc {
			t.Fatalf("tokenize(%q) = %q %q, client-native says %q %q", line, words, comment, cw, cc)
		}
	})
}
