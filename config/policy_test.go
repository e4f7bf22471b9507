package config

import (
	"strings"
	"testing"
	"time"
)

func TestPolicyAndCheckBounds(t *testing.T) {
	d := Default()
	if !d.Policy.CLI || len(d.Policy.AllowedPaths) == 0 || d.HAProxy.CheckTimeout.D() != time.Minute ||
		d.HAProxy.CheckMemoryMax != Size(1<<30) || d.HAProxy.CheckUser != "nobody" {
		t.Fatalf("defaults: %+v %+v", d.Policy, d.HAProxy)
	}
	cfg, err := Parse([]byte(`haproxy:
  check_timeout: 90s
  check_memory_max: 512MiB
  check_user: haproxy-check
  check_groups: [ssl-cert]
policy:
  cli: false
  allowed_paths: [/srv/haproxy]
  allow:
    - "lua-load /srv/haproxy/lua/*.lua"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HAProxy.CheckTimeout.D() != 90*time.Second || cfg.HAProxy.CheckMemoryMax.Bytes() != 512<<20 ||
		cfg.HAProxy.CheckUser != "haproxy-check" || cfg.HAProxy.CheckGroups[0] != "ssl-cert" {
		t.Errorf("haproxy: %+v", cfg.HAProxy)
	}
	if cfg.Policy.CLI || cfg.Policy.AllowedPaths[0] != "/srv/haproxy" || len(cfg.Policy.CertPaths) == 0 || len(cfg.Policy.Allow) != 1 {
		t.Errorf("policy: %+v (cert_paths keep their default)", cfg.Policy)
	}
	if cfg, err := Parse([]byte("haproxy:\n  check_memory_max: unlimited\n")); err != nil || !cfg.HAProxy.CheckMemoryMax.IsUnlimited() {
		t.Errorf("unlimited: %+v, %v", cfg.HAProxy.CheckMemoryMax, err)
	}
	for _, c := range []struct{ yaml, want string }{
		{"haproxy:\n  check_memory_max: 1024\n", "needs a unit"},
		{"haproxy:\n  check_memory_max: 1GB\n", "needs a unit"},
		{"haproxy:\n  check_memory_max: 16MiB\n", "below 64MiB"},
		{"haproxy:\n  check_timeout: 0s\n", "check_timeout: must be positive"},
		{"haproxy:\n  check_user: root\n", "check_user"},
		{"policy:\n  allowed_paths: [etc/haproxy]\n", "not an absolute path"},
		{"policy:\n  cert_paths: [/]\n", "would allow every file"},
		{"policy:\n  allow: [\"*\"]\n", "would allow every line"},
		{"policy:\n  allow: [\" \"]\n", "would allow every line"},
		{"policy:\n  unknown: 1\n", `unknown field "unknown" in policy`},
	} {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.yaml, err, c.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	for _, c := range []struct {
		s    Size
		want string
	}{{1 << 30, "1GiB"}, {512 << 20, "512MiB"}, {3 << 10, "3KiB"}, {UnlimitedSize, "unlimited"}, {1536, "1KiB"}} {
		if got := c.s.String(); got != c.want {
			t.Errorf("%d: %q, want %q", c.s, got, c.want)
		}
	}
	for _, s := range []string{"1GiB", "512MiB", "2TiB", "unlimited"} {
		v, err := ParseSize(s)
		if err != nil || v.String() != s {
			t.Errorf("round trip %q: %v %v", s, v, err)
		}
	}
}
