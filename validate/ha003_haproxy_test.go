package validate

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
)

// missingRe reads haproxy's own verdict: "missing timeouts for backend 'b'."
// (a listen is a "proxy" there).
var missingRe = regexp.MustCompile(`missing timeouts for [a-z]+ '([^']*)'`)

// TestHA003AgreesWithHAProxy runs the real haproxy -c on configs at the
// edges of its missing-timeouts condition and requires HA003 to name
// exactly the proxies haproxy names: disabled proxies (inherited from
// defaults, undone by "enabled"), http backends with only a tunnel
// timeout, zero values, named defaults and "defaults ... from",
// server-template, backends without servers, timeouts written on the
// side that ignores them.
func TestHA003AgreesWithHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	cases := map[string]string{
		"disabled": `defaults
    mode tcp
backend b1
    disabled
    server s1 127.0.0.53:1
frontend f1
    disabled
    bind 127.0.0.1:18990
    default_backend b1
listen l1
    bind 127.0.0.1:18991
    timeout client 1s
    timeout connect 1s
    timeout server 1s
`,
		"defaults_disabled": `defaults
    mode tcp
    disabled
backend b1
    server s1 127.0.0.53:1
backend b2
    enabled
    server s1 127.0.0.53:1
listen l1
    enabled
    bind 127.0.0.1:18992
    timeout client 1s
    timeout connect 1s
    timeout server 1s
`,
		"http_tunnel": `defaults
    mode http
    timeout connect 5s
    timeout client 5s
backend b1
    timeout tunnel 1h
    server s1 127.0.0.53:1
listen l1
    bind 127.0.0.1:18993
    mode tcp
    timeout tunnel 1h
    server s1 127.0.0.53:1
`,
		"zero": `defaults
    mode tcp
    timeout connect 5s
    timeout client 5s
    timeout server 5s
backend b1
    timeout server 0
    server s1 127.0.0.53:1
frontend f1
    bind 127.0.0.1:18994
    timeout client 0s
    default_backend b1
`,
		"named": `defaults base
    mode tcp
    timeout connect 5s
    timeout client 5s
    timeout server 5s
defaults other
    mode tcp
backend b1 from base
    server s1 127.0.0.53:1
backend b2
    server s1 127.0.0.53:1
defaults d3 from base
    timeout tunnel 1h
backend b3 from d3
    timeout server 0
    server s1 127.0.0.53:1
listen l1 from base
    bind 127.0.0.1:18995
    server s1 127.0.0.53:1
`,
		"template_and_sides": `defaults
    mode tcp
    timeout client 5s
backend b1
    server-template s 3 127.0.0.53:1
backend b2
    default-server check
listen l1
    bind 127.0.0.1:18996
    timeout connect 1s
    timeout server 1s
    timeout client 0
frontend f2
    bind 127.0.0.1:18997
    timeout client 1s
    default_backend b3
backend b3
    timeout client 1s
    timeout connect 1s
    server s 127.0.0.53:1
`,
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) { agreeHA003(t, name, text, map[string]string{}) })
	}
}

// agreeHA003 runs text through the real haproxy -c and haguard's model in
// the same environment, and requires HA003 to name exactly the proxies
// whose missing timeouts haproxy warns about. It returns haproxy's verdict.
func agreeHA003(t *testing.T, name, text string, env map[string]string) SyntaxResult {
	t.Helper()
	reg := NewRegistry()
	for _, r := range timeoutRules() {
		if r.ID == "HA003" {
			if err := reg.Register(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	path := writeFile(t, t.TempDir(), name+".cfg", text)
	res, err := RunSyntaxEnv(context.Background(), testbed.HAProxyBin(), []string{path}, env)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, m := range missingRe.FindAllStringSubmatch(res.Output, -1) {
		want[m[1]] = true
	}
	cfg, err := ParseWith(ReadOptions{Env: env, Target: installedTarget(t)}, path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range reg.Lint(cfg, nil) {
		got[strings.SplitN(f.Message, "'", 3)[1]] = true
	}
	// haproxy checks for missing timeouts only once it has read the whole
	// config without a fatal error.
	if !res.OK {
		return res
	}
	if g, w := keys(got), keys(want); strings.Join(g, ",") != strings.Join(w, ",") {
		t.Errorf("HA003 names %v, haproxy -c names %v\n%s", g, w, res.Output)
	}
	return res
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestHA003TrailingJunk: haproxy 2.6 accepts "timeout client 10sx" with a
// warning and uses 10s, so the timer is set and HA003 must stay silent.
func TestHA003TrailingJunk(t *testing.T) {
	cfg, err := ParseReader("junk.cfg", strings.NewReader("defaults\n mode tcp\n timeout connect 1s\n timeout client 10sx\n timeout server 10s\nlisten l\n bind 127.0.0.1:19300\n server s 127.0.0.53:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range DefaultRegistry().Lint(cfg, nil) {
		if f.Rule == "HA003" {
			t.Errorf("HA003 on a timeout haproxy accepts: %+v", f)
		}
	}
}
