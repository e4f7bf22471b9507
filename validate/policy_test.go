package validate

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/haguard/haguard/config"
)

// policyLint runs only the PO rules on cand, as /etc/haproxy/haproxy.cfg,
// against running ("" for none), and returns "RULE line" strings.
func policyLint(t *testing.T, p *Policy, running, cand string) []string {
	t.Helper()
	if running != "" {
		p.Running = parseString(t, "/etc/haproxy/haproxy.cfg", running)
	}
	cfg := parseString(t, "/etc/haproxy/haproxy.cfg", cand)
	var out []string
	for _, f := range DefaultRegistry().Lint(cfg, &Facts{Policy: p}) {
		if strings.HasPrefix(f.Rule, "PO") {
			if f.File != "/etc/haproxy/haproxy.cfg" || f.Line <= 0 || f.Message == "" || f.Fix == "" || f.Section == "" {
				t.Errorf("finding without a place or a text: %+v", f)
			}
			out = append(out, f.Rule+" "+strconv.Itoa(f.Line))
		}
	}
	return out
}

func defaultPolicy() *Policy {
	return NewPolicy(config.DefaultPolicy(), []string{"/etc/haproxy/haproxy.cfg"}, nil)
}

// debianGlobal is the global section of Debian's stock haproxy.cfg.
const debianGlobal = `global
    log /dev/log local0
    log /dev/log local1 notice
    chroot /var/lib/haproxy
    stats socket /run/haproxy/admin.sock mode 660 level admin
    stats timeout 30s
    user haproxy
    group haproxy
    daemon
    ca-base /etc/ssl/certs
    crt-base /etc/ssl/private
`

const debianDefaults = `defaults
    mode http
    errorfile 503 /etc/haproxy/errors/503.http
`

func TestPolicyRefuses(t *testing.T) {
	for _, c := range []struct {
		name, cand string
		want       []string
	}{
		{"Debian's stock config passes", debianGlobal + debianDefaults + "frontend f\n    bind :443 ssl crt site.pem\n", nil},
		{"program", "program evil\n    command /bin/sh -c id\n", []string{"PO001 1", "PO001 2"}},
		{"lua", "global\n    lua-load /etc/haproxy/a.lua\n    lua-load-per-thread /etc/haproxy/b.lua\n    lua-prepend-path /etc/haproxy/?.lua\n",
			[]string{"PO002 2", "PO002 3", "PO002 4"}},
		{"external checks and forks", "global\n    external-check\n    insecure-fork-wanted\n    insecure-setuid-wanted\nbackend b\n    option external-check\n    no option external-check\n    external-check command /bin/true\n",
			[]string{"PO003 2", "PO003 3", "PO003 4", "PO003 6", "PO003 8"}},
		{"environment", "global\n    setenv A 1\n    presetenv B 2\n    resetenv PATH\n    unsetenv C\n",
			[]string{"PO004 2", "PO004 3", "PO004 4", "PO004 5"}},
		{"shared libraries", "global\n    ssl-engine rdrand\n    ssl-provider-path /usr/lib/ossl\n    ssl-provider legacy\n    ssl-provider /tmp/evil.so\nfrontend f\n    filter opentracing config /etc/haproxy/ot.cfg\n",
			[]string{"PO007 2", "PO005 3", "PO007 3", "PO007 5", "PO007 7"}},
		{"files outside the allowed paths", `frontend f
    acl leak src -f /etc/shadow
    acl ok src -f /etc/haproxy/ok.lst
    http-request set-header X %[src,map_ip(/srv/geo.map)]
    http-request return status 200 content-type text/plain file /etc/haproxy/certs/site.pem
    errorfile 503 /etc/haproxy/errors/503.http
    bind :443 ssl crt /etc/haproxy/certs/site.pem ca-file /etc/ssl/certs/ca.pem
    bind /tmp/x.sock
    bind /run/haproxy/fe.sock
    log /dev/log local0
backend b
    server s1 /var/run/docker.sock
    server s2 /run/haproxy/app.sock
`, []string{"PO005 2", "PO005 4", "PO005 5", "PO005 8", "PO005 12"}},
		{"stats socket over the config", "global\n    stats socket /etc/haproxy/haproxy.cfg\n", []string{"PO005 2"}},
		{"devices, proc and sys", `global
    h1-case-adjust-file /proc/self/environ
frontend f
    acl hang src -f /dev/zero
    acl grow req.hdr(x) -m str -f /dev/urandom
    http-request set-header X %[src,map_ip(/sys/kernel/x)]
    log /dev/log local0
    log /dev/kmsg local0
`, []string{"PO006 2", "PO006 4", "PO006 5", "PO006 6", "PO006 8"}},
		{"relative paths resolve from haproxy's directory", "frontend f\n    acl a src -f etc/shadow\n    acl b src -f ../../etc/haproxy/x.lst\n",
			[]string{"PO005 2"}},
		{"default-path config may not climb out", "global\n    default-path config\nfrontend f\n    acl a src -f ../shadow\n    acl b src -f lists/ok.lst\n",
			[]string{"PO005 4", "PO005 5"}},
		{"environment variables", "frontend f\n    acl a src -f \"${LISTS}/a.lst\"\n    bind \"${ADDR}\"\n    acl b src \"${NOPE--f}\" /etc/shadow\n",
			[]string{"PO008 2", "PO008 3", "PO008 4"}},
		{"a keyword spelled another way is the keyword", `global
    "lua-load" /etc/haproxy/a.lua
    lu"a-lo"ad /etc/haproxy/b.lua
    lua-loa\x64 /etc/haproxy/c.lua
    "${UNSET-lua-load}" /etc/haproxy/d.lua
    lua-load\x00junk /etc/haproxy/e.lua
    'setenv' A b
frontend f
    acl a src "-f" '/etc/sh'"adow"
    acl b src -f /etc/haproxy/ok\x2flst
`, []string{"PO002 2", "PO002 3", "PO002 4", "PO008 5", "PO002 6", "PO004 7", "PO005 9"}},
		{"conditional blocks", "global\n.if defined(X)\n    log stdout local0\n.endif\n", []string{"PO008 2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := policyLint(t, defaultPolicy(), "", c.cand)
			if !slices.Equal(got, c.want) {
				t.Errorf("findings %v, want %v", got, c.want)
			}
		})
	}
}

// A relative path under default-path config is judged from every
// directory it may start from: the checked file's, haproxy's working
// directory and the install directory. "lists/ok.lst" is fine from
// /etc/haproxy but not from "/" (haproxy.service's directory), which
// haproxy uses when the file is checked elsewhere: refused above, and
// accepted when the working directory is the config's.
func TestPolicyRelativeFromInstallDir(t *testing.T) {
	p := defaultPolicy()
	p.Refs.WorkDir = "/etc/haproxy"
	got := policyLint(t, p, "", "global\n    default-path config\nfrontend f\n    acl b src -f lists/ok.lst\n")
	if len(got) != 0 {
		t.Errorf("findings %v, want none", got)
	}
}

func TestPolicyGrandfathersTheRunningConfig(t *testing.T) {
	running := debianGlobal + `    lua-load /etc/haproxy/auth.lua
    setenv DC east
program logship
    command /usr/local/bin/logship
frontend f
    acl blocked src -f /srv/lists/blocked.lst
    http-request set-header X %[src,map_ip(/srv/geo.map)]
backend b
    option external-check
    external-check command /usr/local/bin/check
` + debianDefaults
	// Unchanged lines, moved around; the same file referenced from a new
	// line; a new frontend using the same ACL file.
	cand := debianGlobal + `    setenv DC east
    lua-load /etc/haproxy/auth.lua
program logship
    command /usr/local/bin/logship
backend b
    external-check command /usr/local/bin/check
    option external-check
frontend f
    http-request set-header X %[src,map_ip(/srv/geo.map)]
    acl blocked src -f /srv/lists/blocked.lst
frontend g
    acl blocked src -f /srv/lists/blocked.lst
` + debianDefaults
	if got := policyLint(t, defaultPolicy(), running, cand); len(got) != 0 {
		t.Errorf("unchanged lines refused: %v", got)
	}
	// Changed lines are new lines.
	changed := strings.NewReplacer("command /usr/local/bin/logship", "command /bin/sh",
		"setenv DC east", "setenv DC west", "/srv/lists/blocked.lst", "/srv/lists/other.lst",
		"external-check command /usr/local/bin/check", "external-check command /bin/sh").Replace(cand)
	got := policyLint(t, defaultPolicy(), running, changed)
	want := []string{"PO004 12", "PO001 15", "PO003 17", "PO005 21", "PO005 23"}
	if !slices.Equal(got, want) {
		t.Errorf("changed lines: %v, want %v", got, want)
	}
	// An unchanged line whose relative path a new default-path points
	// elsewhere loads another file: judged again.
	relRunning := "frontend f\n    acl a src -f lists/a.lst\n"
	if got := policyLint(t, defaultPolicy(), relRunning, relRunning); len(got) != 0 {
		t.Errorf("unchanged relative line refused: %v", got)
	}
	moved0 := "global\n    default-path origin /etc\n" + relRunning
	if got := policyLint(t, defaultPolicy(), relRunning, moved0); !slices.Equal(got, []string{"PO005 4"}) {
		t.Errorf("relative line pointed elsewhere: %v", got)
	}
	// A line moved to another section is a new line there.
	moved := debianGlobal + "backend c\n    option external-check\n"
	if got := policyLint(t, defaultPolicy(), running, moved); !slices.Equal(got, []string{"PO003 13"}) {
		t.Errorf("moved line: %v", got)
	}
}

func TestPolicyAllow(t *testing.T) {
	pc := config.DefaultPolicy()
	pc.Allow = []string{"lua-load /etc/haproxy/lua/*.lua", "program logship", "command /usr/local/bin/logship *",
		"acl geo src -f /srv/geo/*"}
	p := NewPolicy(pc, []string{"/etc/haproxy/haproxy.cfg"}, nil)
	cand := `global
    lua-load /etc/haproxy/lua/auth.lua
    lua-load /etc/haproxy/other.lua
program logship
    command /usr/local/bin/logship --conf /etc/logship.yml
    command /bin/sh
frontend f
    acl geo src -f /srv/geo/eu.lst
    acl geo src -f /srv/other.lst
`
	got := policyLint(t, p, "", cand)
	want := []string{"PO002 3", "PO001 6", "PO005 9"}
	if !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
}

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"a", "a", true}, {"a", "ab", false}, {"a*", "ab c/d", true}, {"*b", "aab", true}, {"a*c*e", "abcde", true},
		{"a*c*e", "abcd", false}, {"*", "", true}, {"a*a", "a", false},
	} {
		if got := globMatch(c.p, c.s); got != c.ok {
			t.Errorf("globMatch(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

// A symlink under an allowed directory cannot carry a reference out.
func TestPolicySymlinks(t *testing.T) {
	dir := t.TempDir()
	allowed := filepath.Join(dir, "haproxy")
	if err := os.Mkdir(allowed, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, allowed, "ok.lst", "10.0.0.0/8\n")
	for name, target := range map[string]string{"zero": "/dev/zero", "shadow": "/etc/shadow", "etc": "/etc", "ok": filepath.Join(allowed, "ok.lst")} {
		if err := os.Symlink(target, filepath.Join(allowed, name)); err != nil {
			t.Fatal(err)
		}
	}
	p := &Policy{AllowedPaths: []string{allowed}}
	cand := "frontend f\n" +
		"    acl a src -f " + allowed + "/zero\n" +
		"    acl b src -f " + allowed + "/shadow\n" +
		"    acl c src -f " + allowed + "/etc/passwd\n" +
		"    acl d src -f " + allowed + "/ok\n" +
		"    acl e src -f " + allowed + "/etc/missing/file\n"
	got := policyLint(t, p, "", cand)
	want := []string{"PO006 2", "PO005 3", "PO005 4", "PO005 6"}
	if !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
}

func TestPolicyCrtList(t *testing.T) {
	dir := t.TempDir()
	list := writeFile(t, dir, "certs.lst", "# certificates\n"+dir+"/site.pem\n/etc/shadow [ca-file /etc/ssl/certs/ca.pem]\n"+dir+"/b.pem [crl-file /dev/zero]\n")
	p := &Policy{AllowedPaths: []string{dir}, CertPaths: []string{"/etc/ssl/certs"}}
	cand := "frontend f\n    bind :443 ssl crt-list " + list + "\n"
	cfg := parseString(t, "/etc/haproxy/haproxy.cfg", cand)
	var got []string
	for _, f := range DefaultRegistry().Lint(cfg, &Facts{Policy: p}) {
		if !strings.HasPrefix(f.Rule, "PO") {
			continue
		}
		got = append(got, f.Rule+" "+strconv.Itoa(f.Line))
		if strings.Contains(f.Message, "shadow") || strings.Contains(f.Message, "/dev/zero") {
			t.Errorf("a finding quotes the crt-list's content: %s", f.Message)
		}
		if !strings.Contains(f.Message, list) {
			t.Errorf("a finding does not name the list: %s", f.Message)
		}
	}
	if want := []string{"PO005 2", "PO006 2"}; !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
	// The same list, already in the running config, is not read again.
	p.Running = cfg
	p.ReadFile = func(string) ([]byte, error) { t.Fatal("read a grandfathered crt-list"); return nil, nil }
	if got := policyLint(t, p, "", cand); len(got) != 0 {
		t.Errorf("grandfathered: %v", got)
	}
}

// NewPolicy adds the config set's directories.
func TestNewPolicy(t *testing.T) {
	p := NewPolicy(config.DefaultPolicy(), []string{"/srv/lb/haproxy.cfg", "relative.cfg", "/haproxy.cfg"}, nil)
	if !slices.Contains(p.AllowedPaths, "/srv/lb") || slices.Contains(p.AllowedPaths, "/") || slices.Contains(p.AllowedPaths, ".") {
		t.Errorf("allowed paths %v", p.AllowedPaths)
	}
	if !slices.Contains(p.Refs.ConfigDirs, "/srv/lb") {
		t.Errorf("config dirs %v", p.Refs.ConfigDirs)
	}
}

func TestWithCheckBounds(t *testing.T) {
	h := config.Default().HAProxy
	o := Options{Untrusted: true}.WithCheckBounds(h)
	if o.CheckTimeout != DefaultCheckTimeout || o.CheckMemory != DefaultCheckMemory || o.CheckUser != "nobody" || !o.Untrusted {
		t.Errorf("defaults: %+v", o)
	}
	h.CheckMemoryMax = config.UnlimitedSize
	h.CheckGroups = []string{"haproxy"}
	if o = (Options{}).WithCheckBounds(h); o.CheckMemory != -1 || len(o.CheckGroups) != 1 {
		t.Errorf("unlimited: %+v", o)
	}
}
