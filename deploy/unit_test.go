// Package deploy holds what installs and runs haguard on a host: the
// systemd unit, the example haguard.yaml, the Ansible role. Its tests run
// the real unit's hardening under the sandbox's systemd.
package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/validate"
)

// TestMain lets this test binary serve as a helper inside the sandbox
// (see unitHelper) and guards the host's /tmp like every tier-3 package.
func TestMain(m *testing.M) {
	if os.Getenv("HAGUARD_UNIT_HELPER") == "check" {
		os.Exit(unitHelper())
	}
	os.Exit(testbed.RunMain(m))
}

// unitHelper runs an untrusted check the way `haguard serve` runs one for
// an API candidate, and prints its result as JSON. It runs as a unit with
// every hardening line of deploy/haguard.service.
func unitHelper() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := validate.Check(ctx, validate.Options{Files: []string{os.Getenv("HAGUARD_UNIT_CANDIDATE")},
		HAProxyBin: os.Getenv("HAGUARD_UNIT_HAPROXY"), Untrusted: true, CheckTimeout: 30 * time.Second})
	if err != nil {
		fmt.Printf("{\"error\":%q}\n", err.Error())
		return 1
	}
	b, _ := json.Marshal(rep.Syntax)
	fmt.Println(string(b))
	return 0
}

// capBox is the sandbox with haproxy.service running a config whose
// workers drop to user haproxy, as Debian's does.
type capBox struct {
	s      *testbed.Sandbox
	listen string
}

func newCapBox(t *testing.T) *capBox {
	t.Helper()
	testbed.Require(t, testbed.TierSystem)
	b := &capBox{s: testbed.Boot(t)}
	b.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	cfg := strings.Replace(testbed.TCPProxyConfig(b.listen, testbed.TCPBackend(t)), "global\n",
		"global\n\tuser haproxy\n\tgroup haproxy\n", 1)
	b.s.StartHAProxy(t, cfg)
	return b
}

// runUnit runs argv as a oneshot unit made of deploy/haguard.service, with
// a drop-in that changes only how it starts (and extra lines), and
// returns what it printed.
func (b *capBox) runUnit(t *testing.T, name string, env map[string]string, extra string, argv ...string) string {
	t.Helper()
	unit, err := os.ReadFile("haguard.service")
	if err != nil {
		t.Fatal(err)
	}
	sysdir := b.s.HostPath("/run/systemd/system")
	if err := os.MkdirAll(filepath.Join(sysdir, name+".d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sysdir, name), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	var envLines strings.Builder
	for k, v := range env {
		fmt.Fprintf(&envLines, "Environment=%s=%s\n", k, v)
	}
	dropIn := fmt.Sprintf(`[Service]
Type=oneshot
WatchdogSec=0
Restart=no
ExecReload=
ExecStart=
ExecStart=%s
StateDirectory=
StandardOutput=journal
%s%s
`, strings.Join(argv, " "), envLines.String(), extra)
	if err := os.WriteFile(filepath.Join(sysdir, name+".d", "test.conf"), []byte(dropIn), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := b.s.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	_, startErr := b.s.Systemctl(ctx, "start", name)
	out, _, err := b.s.Run(ctx, "journalctl", "--no-pager", "-o", "cat", "-u", name)
	if err != nil {
		t.Fatal(err)
	}
	if startErr != nil {
		t.Logf("%s ended with an error: %v", name, startErr)
	}
	return out
}

// lastJSON is the JSON object out ends with, on one line or pretty-printed
// from a line that is "{" to the last line "}".
func lastJSON(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") && strings.HasSuffix(lines[i], "}") {
			return lines[i]
		}
		if lines[i] == "{" {
			return strings.Join(lines[i:], "\n")
		}
	}
	return ""
}

// TestUnitCapabilitiesSuffice runs what haguard serve does under the
// real unit's hardening, in the sandbox, and measures which capability
// each part needs by running it once more without that capability:
//
//   - the ghost sweep reads the haproxy worker's exe and LISTEN sockets
//     (the worker runs as user haproxy): CAP_SYS_PTRACE, not
//     CAP_DAC_READ_SEARCH, since a worker is not dumpable and its /proc
//     entries stay root's; with `set-dumpable` they are the worker's,
//     and only the documented drop-in (CAP_DAC_READ_SEARCH) reads them;
//   - the untrusted `haproxy -c` switches to nobody (CAP_SETUID,
//     CAP_SETGID) under the unit's seccomp filter, and a root-only file
//     the candidate names stays out of its result.
func TestUnitCapabilitiesSuffice(t *testing.T) {
	b := newCapBox(t)
	bin := testbed.BuildHaguard(t)

	sweep := func(name, extra string) procs.Report {
		out := b.runUnit(t, name, nil, extra, bin, "ghosts", "--format", "json")
		var r procs.Report
		if err := json.Unmarshal([]byte(lastJSON(out)), &r); err != nil {
			t.Fatalf("%s: no JSON report: %v\n%s", name, err, out)
		}
		return r
	}
	// worker is the current worker, and whether its exe and its LISTEN
	// socket were read.
	worker := func(r procs.Report) (procs.Process, bool) {
		for _, p := range r.Processes {
			if p.Class == procs.Current && p.PID != r.MasterPID {
				return p, p.Exe != "" && strings.Contains(strings.Join(p.Listen, " "), b.listen)
			}
		}
		t.Fatalf("no current worker in %+v", r)
		return procs.Process{}, false
	}
	if w, ok := worker(sweep("haguard-sweep.service", "")); !ok {
		t.Fatalf("under the unit the sweep does not read the worker's exe and sockets: %+v", w)
	}
	if w, ok := worker(sweep("haguard-sweep-noptrace.service", "CapabilityBoundingSet=~CAP_SYS_PTRACE")); ok {
		t.Errorf("without CAP_SYS_PTRACE the sweep still reads the worker's exe and sockets, so this test cannot fail: %+v", w)
	}
	dumpable := strings.Replace(testbed.TCPProxyConfig(b.listen, testbed.TCPBackend(t)), "global\n",
		"global\n\tuser haproxy\n\tgroup haproxy\n\tset-dumpable\n", 1)
	b.s.WriteHAProxyConfig(t, dumpable)
	if _, err := b.s.Systemctl(t.Context(), "restart", "haproxy.service"); err != nil {
		t.Fatal(err)
	}
	var w procs.Process
	var seen bool
	for range 50 { // the new worker binds right after the master starts
		if w, seen = worker(sweep("haguard-sweep-dumpable.service", "")); len(w.Listen) > 0 || strings.Contains(w.Reason, "permission denied") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if seen || !strings.Contains(w.Reason, "listening sockets are not all known") {
		t.Errorf("a set-dumpable worker under the unit: %+v; docs/security.md says its sockets cannot be read", w)
	}
	if w, ok := worker(sweep("haguard-sweep-dumpable-dac.service", "CapabilityBoundingSet=CAP_DAC_READ_SEARCH")); !ok {
		t.Errorf("with the documented drop-in the sweep does not read a set-dumpable worker's sockets: %+v", w)
	}

	// The untrusted check, with a candidate that names a root-only file.
	dir := filepath.Join(b.s.Dir(), "captest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("CANARY-UNIT-5d2e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cand := filepath.Join(dir, "cand.cfg")
	body := "global\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 5s\n    timeout server 5s\n" +
		"frontend f\n    bind 127.0.0.1:18098\n    acl leak src -f " + secret + "\n"
	if err := os.WriteFile(cand, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	self := filepath.Join(dir, "deploy.test")
	copyFile(t, os.Args[0], self)
	env := map[string]string{"HAGUARD_UNIT_HELPER": "check", "HAGUARD_UNIT_CANDIDATE": cand, "HAGUARD_UNIT_HAPROXY": testbed.HAProxyBin()}
	check := func(name, extra string) (validate.SyntaxResult, string) {
		out := b.runUnit(t, name, env, extra, self)
		var res validate.SyntaxResult
		_ = json.Unmarshal([]byte(lastJSON(out)), &res)
		return res, out
	}
	res, out := check("haguard-check.service", "")
	if !res.Untrusted || res.OK || strings.Contains(out, "CANARY") || !strings.Contains(res.Output, "haguard withheld") {
		t.Fatalf("the untrusted check under the unit: %+v\n%s", res, out)
	}
	if res, out := check("haguard-check-nosetuid.service", "CapabilityBoundingSet=~CAP_SETUID"); res.Untrusted || !strings.Contains(out, "operation not permitted") {
		t.Errorf("without CAP_SETUID the untrusted check ran anyway, so this test cannot fail: %+v\n%s", res, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
