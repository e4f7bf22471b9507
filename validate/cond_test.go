package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
)

// condCases are conditions at the edges of haproxy's grammar and of each
// predicate, with V=yes and E empty in the environment.
var condCases = []string{
	`1`, `0`, `-0`, `+1`, `010`, `0x10`, `0x`, `08`, ` 1 `, `""`, `"$E"`, `"${V}"`,
	`1 && 0`, `1 || 0`, `0 || 0 && 1`, `1 && 0 || 1`, `!1`, `!!1`, `! 0`, `!(1 && 0)`, `(0 || (1))`,
	`defined(V)`, `defined(E)`, `defined(U)`, `!defined(U)`, `defined()`, `defined`, `defined(V,E)`,
	`defined(HAPROXY_LOCALPEER)`, `defined(HAPROXY_MWORKER)`, `defined(HAPROXY_STARTUP_VERSION)`,
	`streq("$V",yes)`, `streq($V,yes)`, `strneq("$V",yes)`, `streq("$U",)`, `streq(a)`, `streq(a,b,c)`,
	`streq("a,b","a,b")`, `streq('a)',"a)")`, `streq(a\,b,a\,b)`, `streq(a\ b,"a b")`,
	`feature(OPENSSL)`, `feature(SSL)`, `feature(KQUEUE)`, `feature(EPOLL)`, `feature(LUA)`, `feature(QUIC)`,
	`version_atleast(2.4)`, `version_atleast(2.6)`, `version_atleast(2.6.12)`, `version_atleast(2.6.13)`,
	`version_atleast(2.8)`, `version_atleast(3.0)`, `version_before(2.8)`, `version_before(2.6-dev1)`,
	`version_atleast(2.6-dev19)`, `version_atleast(2.6.12-1)`, `version_atleast(x)`, `version_before(x)`,
	`version_atleast()`, `openssl_version_atleast(1.1.1)`, `openssl_version_before(3.0.0)`,
	`openssl_version_atleast(x)`, `ssllib_name_startswith(OpenSSL)`, `ssllib_name_startswith(LibreSSL)`,
	`strstr(abc,b)`, `enabled(EPOLL)`, `nosuch(1)`, `1 x`, `1 &&`, `(1`, `1)`, `&& 1`, `defined(V) && version_atleast(2.4)`,
}

// condVerdict says what haproxy does with ".if COND": "live", "dead",
// or "error" (it refuses the configuration).
func condVerdict(out string) string {
	switch {
	case strings.Contains(out, "'live'"):
		return "live"
	case strings.Contains(out, "'dead'"):
		return "dead"
	}
	return "error"
}

// TestConditionsAgreeWithHAProxy evaluates each condition with the real
// haproxy and with haguard's reader for the same binary, and requires the
// same branch (or the same refusal).
func TestConditionsAgreeWithHAProxy(t *testing.T) {
	target := installedTarget(t)
	env := map[string]string{"V": "yes", "E": ""}
	dir := t.TempDir()
	for i, c := range condCases {
		text := "# condition\n.if " + c + "\n.notice \"live\"\n.else\n.notice \"dead\"\n.endif\n"
		file := filepath.Join(dir, "c.cfg")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(testbed.HAProxyBin(), "-c", "-f", file)
		cmd.Env = []string{"V=yes", "E="}
		out, _ := cmd.CombinedOutput()
		want := condVerdict(string(out))
		cfg, err := ParseWith(ReadOptions{Env: env, Target: target}, file)
		if err != nil {
			t.Fatal(err)
		}
		got := "error"
		for _, n := range cfg.Notes {
			if n.Kind == NoteMessage {
				got = strings.Trim(strings.TrimPrefix(n.Text, ".notice "), "'")
			}
		}
		if got != want {
			t.Errorf("%d: .if %s: haguard %s, haproxy %s\n%s", i, c, got, want, out)
		}
	}
}

// TestConditionalBlocks pins the block structure: nesting, .elif chains,
// a dropped block's condition left unevaluated, and the lines of a dead
// branch neither modelled nor linted.
func TestConditionalBlocks(t *testing.T) {
	text := `# conditional blocks
global
.if version_atleast(2.8)
    # a 2.8-only keyword, unknown to 2.6
    tune.disable-fast-forward
.endif
defaults
    mode tcp
    timeout connect 5s
.if 0
    .if nosuch(()   # never evaluated: its block is dropped
        timeout client 1x
    .else
        timeout client 2x
    .endif
.elif defined(NEVER_SET)
    timeout client 3x
.elif 1
    timeout client "${T-5s}"
.else
    timeout client 4x
.endif
    timeout server 5s
listen l
    bind 127.0.0.1:19301
    server s 127.0.0.53:1
`
	for _, c := range []struct {
		name     string
		target   *Target
		env      map[string]string
		client   string
		masked   int
		findings int
	}{
		{"2.6", &Target{Version: "2.6.12"}, map[string]string{}, "5s", 6, 0},
		{"3.0", &Target{Version: "3.0.0"}, map[string]string{"T": "7s"}, "7s", 4, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseReaderWith(ReadOptions{Env: c.env, Target: c.target}, "c.cfg", strings.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			l := cfg.Listens[0]
			if got := l.EffTimeout("client"); got.Time.Raw != c.client || got.Err != nil || got.Pos.Line != 19 {
				t.Errorf("client = %+v, want %s from line 19", got, c.client)
			}
			if cfg.Masked != c.masked {
				t.Errorf("masked %d lines, want %d", cfg.Masked, c.masked)
			}
			has := false
			for _, d := range cfg.Global.Directives {
				has = has || d.Words[0] == "tune.disable-fast-forward"
			}
			if has != (c.name == "3.0") {
				t.Errorf("2.8-only keyword modelled: %v", has)
			}
			for _, f := range DefaultRegistry().Lint(cfg, nil) {
				if f.Severity == SevError || f.Rule == "HA001" {
					t.Errorf("finding on a config haproxy accepts: %+v", f)
				}
			}
		})
	}
}

// TestConditionalErrors: what haproxy refuses, the reader reports (HA018)
// and stops reading, as haproxy does.
func TestConditionalErrors(t *testing.T) {
	for text, want := range map[string]string{
		".if 1\n":                          "non-terminated '.if' block",
		".endif\n":                         "lone '.endif' with no matching '.if'",
		".if 1\n.else\n.else\n.endif\n":    "'.else' after '.else' is not permitted",
		".if 1\n.else\n.elif 1\n.endif\n":  "'.elif' after '.else' is not permitted",
		".if 1\n.endif x\n":                "Unexpected argument 'x' for '.endif'",
		".if nosuch(1)\n.endif\n":          "unparsable conditional expression 'nosuch(1)'",
		".if 1\n.alert \"stop\"\n.endif\n": ".alert 'stop'",
		".foo\n":                           "unknown directive '.foo'",
		".notice a b\n":                    "Unexpected argument 'b' for '.notice'",
	} {
		cfg, err := ParseReaderWith(ReadOptions{Env: map[string]string{}}, "e.cfg", strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range cfg.Notes {
			got = append(got, n.Text)
		}
		if len(got) != 1 || !strings.Contains(got[0], want) {
			t.Errorf("%q: notes %q, want one with %q", text, got, want)
		}
	}
}

func TestSplitVersion(t *testing.T) {
	for v, want := range map[string][7]uint32{
		"1.2.1-pre2":          {1, 2, 1, 0, 2, 2, 0},
		"1.2.1":               {1, 2, 1, 0, 3, 0, 0},
		"1.2.10.1":            {1, 2, 10, 1, 3, 0, 0},
		"1.3.16-rc1":          {1, 3, 16, 0, 2, 1, 0},
		"1.5-dev18-43":        {1, 5, 0, 0, 1, 18, 43},
		"2.4-dev18-f6818d-20": {2, 4, 0, 0, 1, 18, 20},
		"2.6.12-1+deb12u4":    {2, 6, 12, 0, 3, 0, 0},
		"3.0.0":               {3, 0, 0, 0, 3, 0, 0},
	} {
		if got, ok := splitVersion(v); !ok || got != want {
			t.Errorf("splitVersion(%q) = %v %v, want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "x", "2.x", "2.6.1.2.3"} {
		if _, ok := splitVersion(v); ok {
			t.Errorf("splitVersion(%q) parses", v)
		}
	}
}
