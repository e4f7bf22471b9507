package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHAProxyServiceRunsTheBuildUnderTest proves that the sandbox's
// haproxy.service runs the haproxy the suite was asked to test: the
// master's executable is HAProxyBin, its unit file is HAGUARD_HAPROXY_UNIT
// (or Debian 12's), and it reports the version `HAProxyBin -v` prints. The
// 3.0 pass of `make test` would otherwise test 2.6 twice.
func TestHAProxyServiceRunsTheBuildUnderTest(t *testing.T) {
	s := Boot(t)
	ctx := testCtx(t)
	s.StartHAProxy(t, TCPProxyConfig(fmt.Sprintf("127.0.0.1:%d", FreePort(t)), TCPBackend(t)))

	host, err := s.HostPIDOf(s.showProc(t).master)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", host))
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.EvalSymlinks(HAProxyBin())
	if err != nil {
		t.Fatal(err)
	}
	if exe != want {
		t.Errorf("haproxy.service's master runs %s, want %s", exe, want)
	}

	fragment, err := s.Systemctl(ctx, "show", "-P", "FragmentPath", "haproxy.service")
	if err != nil {
		t.Fatal(err)
	}
	wantUnit := debianUnit
	if HAProxyUnit() != debianUnit {
		wantUnit = unitOverride
	}
	if got := strings.TrimSpace(fragment); got != wantUnit {
		t.Errorf("haproxy.service loaded from %s, want %s", got, wantUnit)
	}

	v, err := HAProxyVersion()
	if err != nil {
		t.Fatal(err)
	}
	// "HAProxy version 3.0.11-9e587df 2025/06/02 - …" → "3.0.11-9e587df"
	fields := strings.Fields(v)
	if len(fields) < 3 {
		t.Fatalf("haproxy -v: %q", v)
	}
	out, err := s.MasterCLI(ctx, "show proc")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, fields[2]) {
		t.Errorf("show proc does not report version %s:\n%s", fields[2], out)
	}
	t.Logf("haproxy.service runs %s (%s) from %s", exe, fields[2], wantUnit)
}

func TestHAProxyDropIn(t *testing.T) {
	t.Setenv("HAGUARD_HAPROXY_BIN", "")
	t.Setenv("HAGUARD_HAPROXY_UNIT", "")
	if got, want := haproxyDropIn("/x/h.cfg"), "[Service]\nEnvironment=CONFIG=/x/h.cfg\n"; got != want {
		t.Errorf("Debian's build: drop-in %q, want %q", got, want)
	}
	// Another binary in Debian 12's unit: its command lines, that binary.
	t.Setenv("HAGUARD_HAPROXY_BIN", "/opt/h/haproxy")
	got := haproxyDropIn("/x/h.cfg")
	for _, line := range []string{
		"ExecStart=\n",
		"ExecStart=/opt/h/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS\n",
		"ExecReload=/opt/h/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS\n",
		"ExecReload=/bin/kill -USR2 $MAINPID\n",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("another binary: drop-in lacks %q:\n%s", line, got)
		}
	}
	// Another build's own unit: it names the binary, the drop-in only the config.
	t.Setenv("HAGUARD_HAPROXY_UNIT", "/opt/h/haproxy.service")
	if got, want := haproxyDropIn("/x/h.cfg"), "[Service]\nEnvironment=CONFIG=/x/h.cfg\n"; got != want {
		t.Errorf("another unit: drop-in %q, want %q", got, want)
	}
}

func TestBuildMismatch(t *testing.T) {
	dir := t.TempDir()
	unit := filepath.Join(dir, "haproxy.service")
	if err := os.WriteFile(unit, []byte("[Service]\nExecStart=/opt/h/haproxy -Ws -f $CONFIG\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HAGUARD_HAPROXY_UNIT", unit)
	t.Setenv("HAGUARD_HAPROXY_BIN", "/opt/h/haproxy")
	if why := buildMismatch(); why != "" {
		t.Errorf("same build: %s", why)
	}
	t.Setenv("HAGUARD_HAPROXY_BIN", "")
	if why := buildMismatch(); !strings.Contains(why, "runs /opt/h/haproxy, but HAGUARD_HAPROXY_BIN is /usr/sbin/haproxy") {
		t.Errorf("unit of another build with Debian's binary: %q", why)
	}
	if err := os.WriteFile(unit, []byte("[Service]\nType=notify\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if why := buildMismatch(); !strings.Contains(why, "has no ExecStart=") {
		t.Errorf("unit without ExecStart: %q", why)
	}
}

func TestBoxHidden(t *testing.T) {
	for path, hidden := range map[string]bool{
		"/tmp/h/haproxy":                         true,
		"/run/haproxy":                           true,
		"/var/tmp/haproxy":                       true,
		"/var/cache/haguard/haproxy/3.0/haproxy": false,
		"/usr/sbin/haproxy":                      false,
		"/tmpfoo/haproxy":                        false,
		"/root/haproxy-3.2.0/haproxy":            false,
	} {
		if got := boxHidden(path) != ""; got != hidden {
			t.Errorf("boxHidden(%s) = %v, want %v", path, got, hidden)
		}
	}
}
