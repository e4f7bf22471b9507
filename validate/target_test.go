package validate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

// TestProbeTargetInstalled asks the installed haproxy what a config read
// by it depends on, and checks it against what `haproxy -vv` says.
func TestProbeTargetInstalled(t *testing.T) {
	tg := installedTarget(t)
	if _, ok := splitVersion(tg.Version); !ok {
		t.Errorf("version %q does not parse", tg.Version)
	}
	if !strings.Contains(tg.Features, "EPOLL") || len(tg.Pollers) == 0 {
		t.Errorf("features %q, pollers %v", tg.Features, tg.Pollers)
	}
	host, _ := os.Hostname()
	if tg.Presets["HAPROXY_LOCALPEER"] != host {
		t.Errorf("HAPROXY_LOCALPEER = %q, want the host name %q", tg.Presets["HAPROXY_LOCALPEER"], host)
	}
	for _, v := range []string{"HAPROXY_CFGFILES", "HAPROXY_MWORKER"} {
		if _, ok := tg.Presets[v]; ok {
			t.Errorf("%s is preset, but haproxy sets it only after reading the files", v)
		}
	}
	// A 2.8+ binary presets its branch; 2.6 does not.
	if _, ok := tg.Presets["HAPROXY_BRANCH"]; ok != tg.AtLeast("2.8") {
		t.Errorf("HAPROXY_BRANCH preset %v on %s", ok, tg.Version)
	}
}

// TestTargetsCache: one probe per binary, again when the file changes.
func TestTargetsCache(t *testing.T) {
	bin, runs := countingHAProxy(t)
	dir := filepath.Dir(bin)
	var ts Targets
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := ts.Get(ctx, bin); err != nil {
			t.Fatal(err)
		}
	}
	if n := runs(); n != 1 {
		t.Errorf("%d probes for 3 calls, want 1", n)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(bin, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get(ctx, bin); err != nil {
		t.Fatal(err)
	}
	if n := runs(); n != 2 {
		t.Errorf("%d probes after the binary changed, want 2", n)
	}
	if _, err := ts.Get(ctx, filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing binary probed fine")
	}
}

// TestTargetsFileCache: with File, a second process (a new Targets) takes
// the probe from the file while the binary is unchanged, and probes again
// once it is replaced.
func TestTargetsFileCache(t *testing.T) {
	bin, runs := countingHAProxy(t)
	dir := filepath.Dir(bin)
	file := filepath.Join(dir, "haproxy-target.json")
	ctx := context.Background()
	var first *Target
	for i := 0; i < 3; i++ {
		ts := &Targets{File: file} // a new process each time
		tg, err := ts.Get(ctx, bin)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = tg
		} else if tg.Version != first.Version || tg.Features != first.Features || len(tg.Presets) != len(first.Presets) || tg.UnsetEatsQuote != first.UnsetEatsQuote {
			t.Errorf("cached probe %+v differs from the probe %+v", tg, first)
		}
	}
	if n := runs(); n != 1 {
		t.Errorf("%d probes for 3 processes, want 1", n)
	}
	// A replaced binary (a new inode, as an upgrade's rename makes) is
	// probed again, even with the same size and mtime.
	st, _ := os.Stat(bin)
	script, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	repl := bin + ".new"
	if err := os.WriteFile(repl, script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(repl, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(repl, bin); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Targets{File: file}).Get(ctx, bin); err != nil {
		t.Fatal(err)
	}
	if n := runs(); n != 2 {
		t.Errorf("%d probes after the binary was replaced, want 2", n)
	}
	// A torn file is probed over, not trusted.
	if err := os.WriteFile(file, []byte(`{"key":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Targets{File: file}).Get(ctx, bin); err != nil {
		t.Fatal(err)
	}
	if n := runs(); n != 3 {
		t.Errorf("%d probes after the file was torn, want 3", n)
	}
}

func TestParseVV(t *testing.T) {
	vv := `HAProxy version 3.0.0-1 2024/05/29 - https://haproxy.org/
Status: long-term supported branch - will stop receiving fixes around Q2 2029.
Build options :
  TARGET  = linux-glibc

Feature list : -51DEGREES +ACCEPT4 +BACKTRACE +EPOLL -KQUEUE +OPENSSL -QUIC +TFO

Default settings :
  bufsize = 16384, maxrewrite = 1024, maxpollevents = 200

Built with OpenSSL version : OpenSSL 3.0.13 30 Jan 2024
Running on OpenSSL version : OpenSSL 3.0.13 30 Jan 2024

Available polling systems :
      epoll : pref=300,  test result OK
       poll : pref=200,  test result OK
     select : pref=150,  test result OK
Total: 3 (3 usable), will use epoll.
`
	tg := parseVV([]byte(vv))
	if tg.Version != "3.0.0-1" || tg.OpenSSLBuilt != "3.0.13" || !strings.HasPrefix(tg.SSLLib, "OpenSSL 3.0.13") {
		t.Errorf("parsed %+v", tg)
	}
	if strings.Join(tg.Pollers, ",") != "epoll,poll,select" {
		t.Errorf("pollers %v", tg.Pollers)
	}
	for name, want := range map[string]bool{"OPENSSL": true, "SSL": false, "KQUEUE": false, "QUIC": false, "EPOLL": true, "TFO": true} {
		if tg.hasFeature(name) != want {
			t.Errorf("feature(%s) = %v", name, !want)
		}
	}
	if c, ok := tg.opensslCompare("3.0.2"); !ok || c != -1 {
		t.Errorf("openssl 3.0.2 vs 3.0.13: %d %v", c, ok)
	}
	if !tg.AtLeast("2.8") || tg.AtLeast("3.1") {
		t.Errorf("AtLeast wrong for %s", tg.Version)
	}
}

// countingHAProxy is a wrapper around the real binary, in a directory of
// its own, that counts its -vv runs (runs).
func countingHAProxy(t *testing.T) (bin string, runs func() int) {
	t.Helper()
	testbed.Require(t, testbed.TierBinary)
	dir := t.TempDir()
	bin = filepath.Join(dir, "haproxy")
	count := filepath.Join(dir, "count")
	script := "#!/bin/sh\n[ \"$1\" = -vv ] && echo x >> " + count + "\nexec " + testbed.HAProxyBin() + " \"$@\"\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, func() int { b, _ := os.ReadFile(count); return strings.Count(string(b), "x") }
}
