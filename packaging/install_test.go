package packaging

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

func TestMain(m *testing.M) {
	code := testbed.RunMain(m)
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// hostPaths are what the package installs or creates. None may exist on
// the host before or after the test: everything happens in the sandbox,
// over overlays (overlay.sh).
var hostPaths = []string{
	"/usr/bin/haguard",
	"/lib/systemd/system/haguard.service",
	"/etc/haguard",
	"/var/lib/haguard",
	"/var/lib/dpkg/info/haguard.list",
	"/usr/share/man/man1/haguard.1.gz",
}

func assertHostClean(t *testing.T, when string) {
	t.Helper()
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s: %s exists on the HOST; the package test must not (and will not) run on a host that has haguard installed", when, p)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "haguard").CombinedOutput(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("%s: dpkg on the HOST knows haguard: %s", when, out)
	}
}

// TestPackageInSandbox builds the .deb with `make deb`, installs it with
// dpkg inside a sandbox whose /usr, /etc and /var are overlays, and checks
// what an operator does next: the version, the man page, the unit
// (Type=notify) starting and stopping, then remove and purge.
func TestPackageInSandbox(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	for _, tool := range []string{"make", "git", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
	}
	assertHostClean(t, "before")
	s := testbed.Boot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// make deb, with the binary and the package in the shared run dir.
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	describe := func() string {
		out, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
		if err != nil {
			t.Fatalf("git describe: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	before := describe()
	build := filepath.Join(s.Dir(), "build")
	mk := exec.CommandContext(ctx, "make", "-s", "-C", root, "deb", "BIN="+filepath.Join(build, "haguard"), "DIST="+filepath.Join(build, "dist"))
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	after := describe()
	debs, _ := filepath.Glob(filepath.Join(build, "dist", "haguard_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v, want one haguard_*_amd64.deb", debs)
	}
	deb := debs[0]
	t.Logf("built %s", filepath.Base(deb))

	run := func(argv ...string) string {
		t.Helper()
		out, stderr, err := s.Run(ctx, argv...)
		if err != nil {
			t.Fatalf("%v\nstdout: %s", err, out)
		}
		return out + stderr
	}
	// Overlays first: from here on, the box's writes to /usr, /etc and
	// /var stay in the box.
	overlay, err := filepath.Abs("overlay.sh")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(run("env", "KEEP="+testbed.StateRoot(), "sh", overlay))
	probe := filepath.Join("/usr/bin", "haguard-overlay-probe")
	run("touch", probe, "/etc/haguard-overlay-probe", "/var/lib/haguard-overlay-probe")
	for _, p := range []string{probe, "/etc/haguard-overlay-probe", "/var/lib/haguard-overlay-probe"} {
		if _, err := os.Lstat(p); err == nil {
			os.Remove(p)
			t.Fatalf("a file the box wrote at %s appeared on the host: the overlay does not isolate; stopping before dpkg", p)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "build")); err != nil {
		t.Fatal(err)
	}
	run("touch", filepath.Join(s.Dir(), "shared-probe"))
	if _, err := os.Stat(filepath.Join(s.Dir(), "shared-probe")); err != nil {
		t.Fatalf("the run dir is no longer shared with the box after the overlay: %v", err)
	}

	// Install.
	t.Log(run("dpkg", "-i", deb))
	if got := run("dpkg-query", "-W", "-f=${Status} ${Version}", "haguard"); !strings.HasPrefix(got, "install ok installed ") {
		t.Fatalf("dpkg-query after install: %q", got)
	}

	// haguard version prints the git version make deb stamped.
	ver := run("haguard", "version")
	if !strings.HasPrefix(ver, "haguard "+before+" ") && !strings.HasPrefix(ver, "haguard "+after+" ") {
		t.Errorf("haguard version: %q, want the git version %q", ver, after)
	}
	if strings.Contains(ver, "haguard dev ") {
		t.Errorf("haguard version: %q is not stamped", ver)
	}

	// --version agrees with version; the package is not enabled by itself.
	if v := run("haguard", "--version"); v != ver {
		t.Errorf("haguard --version: %q, haguard version: %q", v, ver)
	}
	if en, _, _ := s.Run(ctx, "systemctl", "is-enabled", "haguard.service"); strings.TrimSpace(en) != "disabled" {
		t.Errorf("after install: haguard.service is %q, want disabled (the package never enables it)", strings.TrimSpace(en))
	}

	// man haguard renders the page from /usr/share/man/man1.
	page := run("env", "MANPAGER=cat", "MANWIDTH=80", "man", "haguard")
	if flat := strings.Join(strings.Fields(page), " "); !strings.Contains(flat, "NAME haguard - Safe HAProxy reloads") {
		t.Errorf("man haguard:\n%.600s", page)
	}
	if where := strings.TrimSpace(run("man", "-w", "haguard-reload")); where != "/usr/share/man/man1/haguard-reload.1.gz" {
		t.Errorf("man -w haguard-reload: %q", where)
	}
	reloadPage := strings.Join(strings.Fields(run("env", "MANPAGER=cat", "MANWIDTH=80", "man", "haguard-reload")), " ")
	for _, want := range []string{"HAGUARD-RELOAD(1)", "EXIT STATUS", "FILES /etc/haguard/haguard.yaml", "EXAMPLES", "SEE ALSO"} {
		if !strings.Contains(reloadPage, want) {
			t.Errorf("man haguard-reload lacks %q:\n%.800s", want, reloadPage)
		}
	}
	if mode := strings.TrimSpace(run("stat", "-c", "%a", "/etc/haguard/token")); mode != "600" {
		t.Errorf("/etc/haguard/token mode %s, want 600", mode)
	}

	// The daemon: haproxy.service runs (haguard serve watches it); the API
	// listens on a free loopback port (the box shares the host's network).
	s.StartHAProxy(t, testbed.TCPProxyConfig(fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t)), testbed.TCPBackend(t)))
	listen := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	// The config haproxy runs is the unit's (the sandbox's drop-in points
	// haproxy.service at the test's file): haguard reads it from there.
	run("sed", "-i", "-e", "s|^  listen: 127.0.0.1:9180$|  listen: "+listen+"|", "/etc/haguard/haguard.yaml")
	if cfg := run("cat", "/etc/haguard/haguard.yaml"); !strings.Contains(cfg, listen) {
		t.Fatalf("could not point /etc/haguard/haguard.yaml at the test's port:\n%s", cfg)
	}
	if typ := strings.TrimSpace(run("systemctl", "show", "-p", "Type", "--value", "haguard.service")); typ != "notify" {
		t.Errorf("haguard.service Type=%s, want notify", typ)
	}
	if out, err := s.Systemctl(ctx, "start", "haguard.service"); err != nil {
		journal, _, _ := s.Run(ctx, "journalctl", "--no-pager", "-n", "40", "-u", "haguard.service")
		t.Fatalf("systemctl start haguard: %v %s\n%s", err, out, journal)
	}
	// With Type=notify, start returns once haguard sent READY=1.
	if st := strings.TrimSpace(run("systemctl", "is-active", "haguard.service")); st != "active" {
		t.Errorf("haguard.service is %s after start, want active", st)
	}
	if got := run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://"+listen+"/v1/healthz"); got != "200" {
		t.Errorf("GET /v1/healthz on the packaged daemon: %s", got)
	}

	// Upgrade (here: the same package again): the operator's edit of the
	// conffile and the token survive, and the running daemon is restarted
	// onto the new binary (postinst: deb-systemd-invoke try-restart),
	// unless policy-rc.d forbids it, as container images' does (exit 101).
	// The box's /usr is an overlay: its policy-rc.d is the box's own.
	token := run("cat", "/etc/haguard/token")
	mainPID := func() string {
		return strings.TrimSpace(run("systemctl", "show", "-p", "MainPID", "--value", "haguard.service"))
	}
	pid := mainPID()
	run("sh", "-c", "printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d")
	run("dpkg", "-i", deb)
	if now := mainPID(); now != pid {
		t.Errorf("policy-rc.d said 101, yet the upgrade restarted haguard.service (MainPID %s, was %s)", now, pid)
	}
	run("rm", "-f", "/usr/sbin/policy-rc.d")
	run("dpkg", "-i", deb)
	if got := run("cat", "/etc/haguard/token"); got != token {
		t.Error("the upgrade replaced the API token")
	}
	if cfg := run("cat", "/etc/haguard/haguard.yaml"); !strings.Contains(cfg, listen) {
		t.Error("the upgrade lost the operator's edit of /etc/haguard/haguard.yaml")
	}
	if st := strings.TrimSpace(run("systemctl", "is-active", "haguard.service")); st != "active" {
		t.Errorf("haguard.service is %s after the upgrade, want active", st)
	}
	if now := strings.TrimSpace(run("systemctl", "show", "-p", "MainPID", "--value", "haguard.service")); now == pid {
		t.Errorf("haguard.service was not restarted by the upgrade (MainPID still %s)", pid)
	}

	if out, err := s.Systemctl(ctx, "stop", "haguard.service"); err != nil {
		t.Fatalf("systemctl stop haguard: %v %s", err, out)
	}
	show := run("systemctl", "show", "-p", "ActiveState,Result,ExecMainStatus", "haguard.service")
	for _, want := range []string{"ActiveState=inactive", "Result=success"} {
		if !strings.Contains(show, want) {
			t.Errorf("after systemctl stop haguard: %s; want %s (a clean stop)", strings.TrimSpace(show), want)
		}
	}

	// The operator enables the daemon; remove must leave no way to start
	// it (masked), purge no link behind.
	run("systemctl", "enable", "haguard.service")
	const wants = "/etc/systemd/system/multi-user.target.wants/haguard.service"
	if _, _, err := s.Run(ctx, "test", "-L", wants); err != nil {
		t.Fatalf("systemctl enable made no %s", wants)
	}

	// The operator switches the reload drop-in on; remove takes it away
	// with the binary it names, so haproxy reloads as before.
	// (doctor exits 1 on the problems of a bare test box: no stats socket.)
	run("sh", "-c", "/usr/bin/haguard doctor --enable-dropin >/dev/null || true")
	const dropIn = "/etc/systemd/system/haproxy.service.d/haguard.conf"
	if _, _, err := s.Run(ctx, "test", "-L", dropIn); err != nil {
		t.Fatalf("doctor --enable-dropin made no link at %s", dropIn)
	}

	// Remove keeps state and token; purge deletes them and the conffile.
	run("dpkg", "-r", "haguard")
	if _, _, err := s.Run(ctx, "test", "-L", dropIn); err == nil {
		t.Errorf("after dpkg -r: %s is still there: every reload of haproxy would run a binary that is gone", dropIn)
	}
	if er := run("systemctl", "show", "-p", "ExecReload", "--value", "haproxy.service"); strings.Contains(er, "exec-reload") {
		t.Errorf("after dpkg -r: haproxy.service still reloads through haguard: %s", er)
	}
	if ls := strings.TrimSpace(run("systemctl", "show", "-p", "LoadState", "--value", "haguard.service")); ls != "masked" {
		t.Errorf("after dpkg -r: haguard.service LoadState=%s, want masked (an enabled unit without its binary)", ls)
	}
	for _, p := range []string{"/var/lib/haguard", "/etc/haguard/token", "/etc/haguard/haguard.yaml"} {
		if _, _, err := s.Run(ctx, "test", "-e", p); err != nil {
			t.Errorf("after dpkg -r: %s is gone; remove must keep it", p)
		}
	}
	if _, _, err := s.Run(ctx, "test", "-e", "/usr/bin/haguard"); err == nil {
		t.Error("after dpkg -r: /usr/bin/haguard is still there")
	}
	run("dpkg", "-P", "haguard")
	for _, p := range []string{"/usr/bin/haguard", "/lib/systemd/system/haguard.service", "/etc/haguard", "/var/lib/haguard", "/usr/share/man/man1/haguard.1.gz", wants, "/etc/systemd/system/haguard.service"} {
		if _, _, err := s.Run(ctx, "test", "-e", p); err == nil {
			t.Errorf("after purge: %s is still in the box", p)
		}
	}
	if st := run("sh", "-c", "dpkg-query -W -f='${Status}' haguard 2>/dev/null || true"); strings.Contains(st, "installed") {
		t.Errorf("after purge: dpkg still knows haguard: %s", st)
	}
	if ls := strings.TrimSpace(run("systemctl", "show", "-p", "LoadState", "--value", "haguard.service")); ls != "not-found" {
		t.Errorf("after purge: haguard.service LoadState=%s, want not-found", ls)
	}

	assertHostClean(t, "after")
}
