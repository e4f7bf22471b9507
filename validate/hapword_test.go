package validate

import "testing"

// TestHAProxyWord pins haproxyWord to haproxy's parse_line (src/tools.c).
func TestHAProxyWord(t *testing.T) {
	for _, c := range []struct {
		in, want string
		env      bool
	}{
		{"lua-load", "lua-load", false},
		{`"lua-load"`, "lua-load", false},
		{`lu"a-lo"ad`, "lua-load", false},
		{`'lua-load'`, "lua-load", false},
		{`lua-loa\x64`, "lua-load", false},
		{`lua-load\x00junk`, "lua-load", false},
		{`a\ b`, "a b", false},
		{`a\\b`, `a\b`, false},
		{`a\qb`, `a\qb`, false},
		{`a\xZZ`, `a\xZZ`, false},
		{`\t\n\r\#`, "\t\n\r#", false},
		{`'a\x64'`, `a\x64`, false},
		{`"it's"`, "it's", false},
		{`'say "hi"'`, `say "hi"`, false},
		{`"${HOME}/x"`, "${HOME}/x", true},
		{`$HOME`, "$HOME", true},
		{`"${X-lua-load}"`, "${X-lua-load}", true},
		{`"$.FILE"`, "$.FILE", true},
		{`'$HOME'`, "$HOME", false},
		{`"\$HOME"`, "$HOME", false},
		{`cost$5`, "cost$5", false},
		{`x$`, "x$", false},
	} {
		got, env := haproxyWord(c.in)
		if got != c.want || env != c.env {
			t.Errorf("haproxyWord(%q) = %q, %v; want %q, %v", c.in, got, env, c.want, c.env)
		}
	}
	ws := []string{"a", "b"}
	if out, _ := haproxyWords(ws); &out[0] != &ws[0] {
		t.Error("haproxyWords copied words that need no change")
	}
}
