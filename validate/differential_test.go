package validate

import (
	"strings"
	"testing"
)

// issue21 is the config of issue 21, with its client timeout written as
// the syntax form under test.
const issue21 = `global
    setenv SET_IN_GLOBAL 5s
defaults
    mode http
    timeout connect 5s
    timeout server 5s
    timeout client CLIENT
frontend fe
    bind 127.0.0.1:19310
    default_backend be
backend be
    server s1 127.0.0.53:1
`

// syntaxForms are ways to write "timeout client 5s" (or to fail to).
var syntaxForms = []struct {
	name, client string
	env          map[string]string
}{
	{"plain", `5s`, nil},
	{"double_quotes", `"5s"`, nil},
	{"single_quotes", `'5s'`, nil},
	{"hex_escape", `\x35s`, nil},
	{"hex_escape_quoted", `"5\x73"`, nil},
	{"glued_quotes", `"5"'s'`, nil},
	{"empty_quotes_inside", `5""s`, nil},
	{"default_unset", `"${T-5s}"`, nil},
	{"default_set", `"${T-5s}"`, map[string]string{"T": "7s"}},
	{"default_empty_set", `"${T-5s}"`, map[string]string{"T": ""}},
	{"var", `"$T"`, map[string]string{"T": "5s"}},
	{"var_braces", `"${T}"`, map[string]string{"T": "5s"}},
	{"var_unset", `"${T}"`, nil},
	{"var_unquoted", `$T`, map[string]string{"T": "5s"}},
	{"var_single_quoted", `'$T'`, map[string]string{"T": "5s"}},
	{"var_expand_words", `"${T[*]}"`, map[string]string{"T": "5s"}},
	{"setenv_in_global", `"$SET_IN_GLOBAL"`, nil},
	{"shell_default", `"${T:-5s}"`, nil},
	{"open_quote", `"5s`, nil},
	{"comment_after", `5s # five seconds`, nil},
	{"comment_glued", `5s#five`, nil},
	{"quoted_hash", `"5s#"`, nil},
	{"zero", `"0"`, nil},
	{"quoted_space", `"5 s"`, nil},
	{"pseudo_line", `"${.LINE}s"`, nil},
	{"empty", `""`, nil},
}

// TestSyntaxFormsAgreeWithHAProxy runs each form through the real
// haproxy -c and haguard's model, in the same environment: where haproxy
// warns about missing timeouts HA003 must fire, where it does not HA003
// must not (agreeHA003); where haproxy refuses the config, haguard must
// report an error, and where it accepts it, no error but HA003's.
func TestSyntaxFormsAgreeWithHAProxy(t *testing.T) {
	target := installedTarget(t)
	for _, f := range syntaxForms {
		t.Run(f.name, func(t *testing.T) {
			env := f.env
			if env == nil {
				env = map[string]string{}
			}
			text := strings.Replace(issue21, "CLIENT", f.client, 1)
			res := agreeHA003(t, f.name, text, env)
			cfg, err := ParseReaderWith(ReadOptions{Env: env, Target: target}, f.name+".cfg", strings.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			var errs []string
			for _, fd := range DefaultRegistry().Lint(cfg, nil) {
				if fd.Severity == SevError && (fd.Rule != "HA003" || !res.OK) {
					errs = append(errs, fd.Rule+": "+fd.Message)
				}
			}
			if !res.OK && len(errs) == 0 {
				t.Errorf("haproxy refuses %s, haguard has no error finding\n%s", f.client, res.Output)
			}
			if res.OK && len(errs) > 0 {
				t.Errorf("haproxy accepts %s, haguard has error findings %q", f.client, errs)
			}
		})
	}
}

// TestIssue21Acceptance pins the values the acceptance criteria name.
func TestIssue21Acceptance(t *testing.T) {
	for _, c := range []struct {
		client string
		env    map[string]string
		want   string
	}{
		{`"5s"`, nil, "5s"}, {`"${T-5s}"`, nil, "5s"}, {`'5s'`, nil, "5s"}, {`\x35s`, nil, "5s"},
		{`"${T-5s}"`, map[string]string{"T": "7s"}, "7s"},
	} {
		env := c.env
		if env == nil {
			env = map[string]string{}
		}
		cfg, err := ParseReaderWith(ReadOptions{Env: env}, "i.cfg", strings.NewReader(strings.Replace(issue21, "CLIENT", c.client, 1)))
		if err != nil {
			t.Fatal(err)
		}
		got := cfg.Frontends[0].EffTimeout("client")
		if !got.Set() || FormatDuration(got.Time.D) != c.want {
			t.Errorf("timeout client %s with %v = %+v, want %s", c.client, c.env, got, c.want)
		}
		for _, f := range DefaultRegistry().Lint(cfg, nil) {
			if f.Rule == "HA003" {
				t.Errorf("timeout client %s: %+v", c.client, f)
			}
		}
	}
}

// namedDefaults: each proxy gets its timeouts from the defaults section
// haproxy gives it.
const namedDefaults = `defaults base
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
defaults long from base
    timeout client 1h
    timeout server 1h
backend b_base from base
    server s 127.0.0.53:1
defaults
    mode tcp
    timeout connect 1s
listen l_last
    bind 127.0.0.1:19320
    server s 127.0.0.53:1
listen l_long from long
    bind 127.0.0.1:19321
    server s 127.0.0.53:1
defaults from long
    timeout tunnel 2h
listen l_unnamed_from
    bind 127.0.0.1:19322
    server s 127.0.0.53:1
frontend f_base from base
    bind 127.0.0.1:19323
    default_backend b_base
`

// TestNamedDefaults: "from NAME" gets NAME's timeouts (and NAME's own
// "from" chain), a later unnamed defaults changes nothing for it, and a
// proxy without "from" takes the last defaults read, named or not.
func TestNamedDefaults(t *testing.T) {
	cfg, err := ParseReaderWith(ReadOptions{Env: map[string]string{}}, "n.cfg", strings.NewReader(namedDefaults))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		proxy                   string
		client, server, connect string
		tunnel                  string
	}{
		{"b_base", "10s", "10s", "5s", ""},
		{"l_last", "", "", "1s", ""},
		{"l_long", "1h", "1h", "5s", ""},
		{"l_unnamed_from", "1h", "1h", "5s", "2h"},
		{"f_base", "10s", "10s", "5s", ""},
	} {
		var p *Proxy
		for _, q := range cfg.Proxies() {
			if q.Name == c.proxy {
				p = q
			}
		}
		for name, want := range map[string]string{"client": c.client, "server": c.server, "connect": c.connect, "tunnel": c.tunnel} {
			got := p.EffTimeout(name)
			if s := map[bool]string{true: FormatDuration(got.Time.D), false: ""}[got.Set()]; s != want {
				t.Errorf("%s: timeout %s = %q, want %q", c.proxy, name, s, want)
			}
		}
	}
}

// TestNamedDefaultsAgreeWithHAProxy checks the same config's HA003 with
// the real haproxy: only l_last misses timeouts.
func TestNamedDefaultsAgreeWithHAProxy(t *testing.T) {
	res := agreeHA003(t, "named_defaults", namedDefaults, map[string]string{})
	if !strings.Contains(res.Output, "proxy 'l_last'") {
		t.Errorf("haproxy should warn about l_last only:\n%s", res.Output)
	}
	// A "from" naming a defaults section not read yet: haproxy refuses,
	// and so does haguard.
	bad := "defaults\n    mode tcp\nbackend b from later\n    server s 127.0.0.53:1\ndefaults later\n    mode tcp\n"
	res = agreeHA003(t, "from_later", bad, map[string]string{})
	cfg, err := ParseReaderWith(ReadOptions{Env: map[string]string{}}, "b.cfg", strings.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || len(cfg.Notes) != 1 || !strings.Contains(cfg.Notes[0].Text, "defaults section 'later' not found") {
		t.Errorf("haproxy ok=%v, notes %+v\n%s", res.OK, cfg.Notes, res.Output)
	}
}

// TestVersionBlockOn26: a 2.8-only keyword inside .if version_atleast(2.8)
// is neither linted nor refused on 2.6; on 2.8+ (make test's 3.0 pass) the
// block is live, and its unitless timeout is linted.
func TestVersionBlockOn26(t *testing.T) {
	text := `global
.if version_atleast(2.8)
    expose-experimental-directives
    tune.disable-fast-forward
.endif
defaults
    mode tcp
    timeout connect 5s
.if version_atleast(2.8)
    timeout client 5
    timeout client-hs 5
.else
    timeout client 5s
.endif
    timeout server 5s
listen l
    bind 127.0.0.1:19330
    server s 127.0.0.53:1
`
	target := installedTarget(t)
	live := target.AtLeast("2.8")
	res := agreeHA003(t, "version_block", text, map[string]string{})
	if !res.OK {
		t.Fatalf("haproxy %s refuses the config:\n%s", target.Version, res.Output)
	}
	cfg, err := ParseReaderWith(ReadOptions{Env: map[string]string{}, Target: target}, "v.cfg", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	inBlock := 0
	for _, f := range DefaultRegistry().Lint(cfg, nil) {
		if f.Line == 10 || f.Line == 11 {
			inBlock++
		}
		if !live && (f.Line == 10 || f.Line == 11 || f.Severity == SevError) {
			t.Errorf("haproxy %s: finding from a dead branch or an error: %+v", target.Version, f)
		}
	}
	if live && inBlock == 0 {
		t.Errorf("haproxy %s reads the version_atleast(2.8) block, and the lint found nothing in its unitless `timeout client 5`", target.Version)
	}
}
