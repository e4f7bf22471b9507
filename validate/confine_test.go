package validate

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

// requireRoot: the untrusted check drops root's powers, so only root can
// show that it does. A tier test never skips silently: it fails.
func requireRoot(t *testing.T) {
	t.Helper()
	testbed.Require(t, testbed.TierBinary)
	if os.Geteuid() != 0 {
		t.Fatal("the untrusted check switches to an unprivileged user: run this test as root")
	}
}

// openDir is a root-owned 0755 directory the check user can enter but
// not write: t.TempDir's parents are 0700.
func openDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "haguard-confine-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func writeMode(t *testing.T, path, body string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUntrustedCheckIsConfined runs a stand-in for haproxy that reports
// who it runs as: the untrusted check has nobody's uid, no supplementary
// group, no capability, no_new_privs, an empty environment, "/" as its
// directory, a 1 GiB address space; and what it leaves running in its
// process group is killed. A trusted check keeps root and the
// environment, under the same bounds.
func TestUntrustedCheckIsConfined(t *testing.T) {
	requireRoot(t)
	dir := openDir(t)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	fake := writeMode(t, filepath.Join(dir, "haproxy"), `#!/bin/sh
r=`+out+`/report.$$
{
  echo "uid=$(id -u) groups=$(id -G)"
  grep -E '^(CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status
  echo "pwd=$(pwd)"
  echo "ulimit=$(ulimit -v)"
  echo "env=$(env | grep -v -E '^(PWD|SHLVL|_)=' | sort | tr '\n' ' ')"
  for a; do case "$a" in -*) ;; *) echo "cfg=$(cat "$a")";; esac; done
} > "$r"
sleep 300 &
echo $! > `+out+`/straggler.$$
echo "Configuration file is valid"
`, 0o755)
	cand := writeMode(t, filepath.Join(t.TempDir(), "cand.cfg"), "global\n    log stdout local0\n", 0o600)
	t.Setenv("HAGUARD_SECRET_ENV", "must-not-leak")

	for _, untrusted := range []bool{true, false} {
		res, err := RunSyntaxWith(t.Context(), SyntaxOptions{Bin: fake, Files: []string{cand}, Untrusted: untrusted})
		if err != nil || !res.OK || res.Untrusted != untrusted {
			t.Fatalf("untrusted=%v: %+v, %v", untrusted, res, err)
		}
		reports, _ := filepath.Glob(filepath.Join(out, "report.*"))
		if len(reports) != 1 {
			t.Fatalf("untrusted=%v: reports %v", untrusted, reports)
		}
		b, _ := os.ReadFile(reports[0])
		report := string(b)
		os.Remove(reports[0])
		want := []string{"ulimit=1048576", "cfg=global\n    log stdout local0"}
		bad := []string{}
		if untrusted {
			want = append(want, "uid=65534 groups=65534\n", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
				"CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "pwd=/\n", "env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \n")
			bad = append(bad, "must-not-leak")
		} else {
			want = append(want, "uid=0 ", "must-not-leak")
		}
		for _, w := range want {
			if !strings.Contains(report, w) {
				t.Errorf("untrusted=%v: the check's report lacks %q:\n%s", untrusted, w, report)
			}
		}
		for _, b := range bad {
			if strings.Contains(report, b) {
				t.Errorf("untrusted=%v: the check's report has %q:\n%s", untrusted, b, report)
			}
		}
		// The sleep it left behind in its process group is gone.
		pids, _ := filepath.Glob(filepath.Join(out, "straggler.*"))
		for _, p := range pids {
			b, _ := os.ReadFile(p)
			os.Remove(p)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if pid <= 0 {
				t.Fatalf("straggler pid %q", b)
			}
			deadline := time.Now().Add(10 * time.Second)
			for syscall.Kill(pid, 0) == nil && !zombie(pid) {
				if time.Now().After(deadline) {
					t.Fatalf("untrusted=%v: pid %d, left in the check's process group, still runs", untrusted, pid)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	// An unknown user, or root, is refused before anything runs.
	for _, u := range []string{"no-such-user-haguard", "root"} {
		if _, err := RunSyntaxWith(t.Context(), SyntaxOptions{Bin: fake, Files: []string{cand}, Untrusted: true, User: u}); err == nil {
			t.Errorf("check user %q accepted", u)
		}
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// devCfg is a small valid config with one more line in its frontend.
func devCfg(line string) string {
	return "global\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 5s\n    timeout server 5s\n" +
		"frontend f\n    bind 127.0.0.1:18099\n    " + line + "\n"
}

// TestCheckTimeout is issue 17's frozen queue: `acl hang src -f /dev/zero`
// kept haproxy -c spinning for over 7 minutes. With the policy off, the
// bounded check ends at its timeout, says so, and leaves no haproxy.
func TestCheckTimeout(t *testing.T) {
	requireRoot(t)
	cand := writeMode(t, filepath.Join(openDir(t), "hang.cfg"), devCfg("acl hang src -f /dev/zero"), 0o644)
	for _, untrusted := range []bool{false, true} {
		start := time.Now()
		rep, err := Check(t.Context(), Options{Files: []string{cand}, HAProxyBin: testbed.HAProxyBin(),
			CheckTimeout: 2 * time.Second, Untrusted: untrusted})
		took := time.Since(start)
		if err != nil || rep.OK || !rep.Syntax.TimedOut || rep.Syntax.OK ||
			!strings.Contains(rep.Syntax.Output, "did not finish within 2s (haproxy.check_timeout)") {
			t.Fatalf("untrusted=%v: %+v, %v", untrusted, rep.Syntax, err)
		}
		// Not a speed target: the bound must be what ended it (a minute is
		// the margin for a loaded machine; unbounded, it runs forever).
		if took > time.Minute {
			t.Errorf("untrusted=%v: the check returned after %s", untrusted, took)
		}
		if left := haproxyFor(cand); len(left) > 0 {
			t.Errorf("untrusted=%v: haproxy -c still runs after its timeout: pids %v", untrusted, left)
		}
	}
}

// haproxyFor lists the processes whose command line names path.
func haproxyFor(path string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), path) && !zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestCheckMemoryBound is issue 17's `-m str -f /dev/urandom`, which grew
// haproxy -c by about 180 MB/s. With the policy off and the default bound,
// the check fails with out_of_memory and its peak resident set (the
// kernel's own count, rusage) stays under 1 GiB.
func TestCheckMemoryBound(t *testing.T) {
	requireRoot(t)
	cand := writeMode(t, filepath.Join(openDir(t), "grow.cfg"), devCfg("acl grow req.hdr(x) -m str -f /dev/urandom"), 0o644)
	// A generous timeout: on a loaded machine reading 1 GiB of urandom
	// takes a while, and the memory bound, not the clock, must end it.
	res, err := RunSyntaxWith(t.Context(), SyntaxOptions{Bin: testbed.HAProxyBin(), Files: []string{cand}, Timeout: 5 * time.Minute})
	if err != nil || res.OK || !res.OutOfMemory || res.TimedOut {
		t.Fatalf("%+v, %v", res, err)
	}
	if res.MaxRSSKB <= 0 || res.MaxRSSKB*1024 > DefaultCheckMemory {
		t.Fatalf("haproxy -c peaked at %d KiB, bound %d KiB", res.MaxRSSKB, DefaultCheckMemory/1024)
	}
	if !strings.Contains(res.Output, "memory bound of 1024 MiB") && !strings.Contains(res.Output, "out of memory under its bound of 1024 MiB") {
		t.Errorf("output does not say why:\n%s", res.Output)
	}
	t.Logf("peak RSS %d MiB under the 1 GiB bound", res.MaxRSSKB>>10)
}

// TestUntrustedCheckLeaksNoFile: a canary in a 0600 root file never
// appears in an untrusted check's result, however the candidate names the
// file (the check cannot open it), and a canary in a world-readable file
// is withheld by the output filter (the check can read it, the client
// does not see it). The trusted check shows both: the test can fail.
func TestUntrustedCheckLeaksNoFile(t *testing.T) {
	requireRoot(t)
	dir := openDir(t)
	secret := writeMode(t, filepath.Join(dir, "secret"), "CANARY-0600-7f3a line\nsecond\n", 0o600)
	public := writeMode(t, filepath.Join(dir, "public"), "CANARY-0644-9c1e line\n", 0o644)
	for _, c := range []struct{ name, file, canary string }{{"root-only", secret, "CANARY-0600-7f3a"}, {"world-readable", public, "CANARY-0644-9c1e"}} {
		lines := []string{
			"acl a src -f " + c.file,
			"acl b req.hdr(x) -m int -f " + c.file,
			"http-request set-header X %[src,map_ip(" + c.file + ")]",
			"http-request set-header Y %[req.hdr(y),map_int(" + c.file + ",0)]",
			"errorfile 503 " + c.file,
			"bind 127.0.0.1:18443 ssl crt " + c.file,
			"http-request return status 200 content-type text/plain file " + c.file,
		}
		for _, l := range lines {
			cand := writeMode(t, filepath.Join(t.TempDir(), "cand.cfg"), devCfg(l), 0o600)
			trusted, err := RunSyntaxWith(t.Context(), SyntaxOptions{Bin: testbed.HAProxyBin(), Files: []string{cand}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := RunSyntaxWith(t.Context(), SyntaxOptions{Bin: testbed.HAProxyBin(), Files: []string{cand}, Untrusted: true})
			if err != nil {
				t.Fatal(err)
			}
			js, _ := json.Marshal(res)
			if strings.Contains(string(js), c.canary) || strings.Contains(strings.Join(res.Warnings, "\n"), c.canary) {
				t.Errorf("%s, %q: the untrusted check's result carries the canary:\n%s", c.name, l, js)
			}
			t.Logf("%s, %q: trusted check shows the canary: %v", c.name, l, strings.Contains(trusted.Output, c.canary))
		}
		// The control: as root, haproxy quotes the file.
		cand := writeMode(t, filepath.Join(t.TempDir(), "cand.cfg"), devCfg(lines[0]), 0o600)
		trusted, _ := RunSyntaxWith(t.Context(), SyntaxOptions{Bin: testbed.HAProxyBin(), Files: []string{cand}})
		if !strings.Contains(trusted.Output, c.canary) {
			t.Fatalf("%s: the trusted check does not show the canary, so this test cannot fail:\n%s", c.name, trusted.Output)
		}
	}
	// The whole report of an untrusted Check, findings included.
	cand0 := writeMode(t, filepath.Join(t.TempDir(), "cand.cfg"), devCfg("acl a src -f "+public), 0o600)
	rep, err := Check(t.Context(), Options{Files: []string{cand0}, HAProxyBin: testbed.HAProxyBin(), Untrusted: true})
	if js, _ := json.Marshal(rep); err != nil || strings.Contains(string(js), "CANARY") || !rep.Syntax.Untrusted {
		t.Errorf("untrusted Check: %v\n%s", err, js)
	}
	// The confinement alone, before the filter: the untrusted haproxy
	// could not open the root-only file.
	cand := writeMode(t, filepath.Join(t.TempDir(), "cand.cfg"), devCfg("acl a src -f "+secret), 0o600)
	in, err := prepareInputs(SyntaxOptions{Bin: testbed.HAProxyBin(), Files: []string{cand}, Untrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer in.close()
	raw, err := in.run(t.Context(), false)
	if err != nil || strings.Contains(raw.Output, "CANARY") || !strings.Contains(raw.Output, "failed to open pattern file <"+secret+">") {
		t.Fatalf("unfiltered untrusted output: %v\n%s", err, raw.Output)
	}
}

// luaBuild reports whether the haproxy under test has Lua (Debian's has;
// a build from source may not).
func luaBuild(t *testing.T) bool {
	vv, err := exec.Command(testbed.HAProxyBin(), "-vv").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -vv: %v", testbed.HAProxyBin(), err)
	}
	return strings.Contains(string(vv), "+LUA")
}

// TestUntrustedLuaCannotHarm is issue 17's `lua-load evil.lua` sent to
// POST /v1/check, with the policy off: the Lua runs inside `haproxy -c`,
// but as nobody it cannot write where root writes, cannot read root's
// files, and what it prints does not reach the result. As root (the
// control) it does all three.
func TestUntrustedLuaCannotHarm(t *testing.T) {
	requireRoot(t)
	if !luaBuild(t) {
		t.Skipf("%s is built without Lua (USE_LUA): lua-load cannot run code in it", testbed.HAProxyBin())
	}
	dir := openDir(t)
	secret := writeMode(t, filepath.Join(dir, "secret"), "CANARY-LUA-0600\n", 0o600)
	public := writeMode(t, filepath.Join(dir, "public"), "CANARY-LUA-0644\n", 0o644)
	marker, shellMarker := filepath.Join(dir, "lua-was-here"), filepath.Join(dir, "shell-was-here")
	evil := writeMode(t, filepath.Join(dir, "evil.lua"), `
local f = io.open("`+marker+`", "w")
if f then f:write("pwned") f:close() end
os.execute("touch `+shellMarker+`")
for _, p in ipairs({"`+secret+`", "`+public+`"}) do
  local r = io.open(p, "r")
  if r then print(r:read("*l")) core.Alert(r:read("*a") or "") r:close() end
end
`, 0o644)
	cand := writeMode(t, filepath.Join(t.TempDir(), "cand.cfg"), "global\n    lua-load "+evil+"\n"+strings.TrimPrefix(devCfg("acl x src 10.0.0.1"), "global\n"), 0o600)

	res, err := RunSyntaxWith(t.Context(), SyntaxOptions{Bin: testbed.HAProxyBin(), Files: []string{cand}, Untrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{marker, shellMarker} {
		if _, err := os.Stat(m); err == nil {
			t.Errorf("the untrusted check's Lua created %s", m)
		}
	}
	js, _ := json.Marshal(res)
	if strings.Contains(string(js), "CANARY-LUA") {
		t.Errorf("the untrusted check's result carries Lua's output:\n%s", js)
	}

	// The control: as root, the same Lua writes both markers and prints
	// both canaries.
	trusted, err := RunSyntaxWith(t.Context(), SyntaxOptions{Bin: testbed.HAProxyBin(), Files: []string{cand}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{marker, shellMarker} {
		if _, err := os.Stat(m); err != nil {
			t.Errorf("control: the trusted check's Lua did not create %s, so this test cannot fail", m)
		}
	}
	if !strings.Contains(trusted.Output, "CANARY-LUA-0600") {
		t.Errorf("control: the trusted check's output lacks the canary:\n%s", trusted.Output)
	}
}

// TestPolicyRefusesBeforeHAProxyRuns: with the policy on, a candidate with
// a program section, Lua or an external check is refused before haproxy
// reads it; a stand-in haproxy that would leave a marker never runs.
func TestPolicyRefusesBeforeHAProxyRuns(t *testing.T) {
	dir := openDir(t)
	ran := filepath.Join(dir, "haproxy-ran")
	fake := writeMode(t, filepath.Join(dir, "haproxy"), "#!/bin/sh\ntouch "+ran+"\necho 'Configuration file is valid'\n", 0o755)
	for name, body := range map[string]string{
		"program":        "global\n    master-worker\nprogram evil\n    command /bin/touch " + filepath.Join(dir, "program-ran") + "\n",
		"lua":            "global\n    lua-load " + filepath.Join(dir, "evil.lua") + "\n",
		"external-check": "global\n    external-check\n    insecure-fork-wanted\nbackend b\n    option external-check\n    external-check command /bin/touch\n    server s 127.0.0.1:1 check\n",
	} {
		cand := writeMode(t, filepath.Join(t.TempDir(), "cand.cfg"), body, 0o600)
		p := &Policy{AllowedPaths: []string{"/etc/haproxy"}}
		rep, err := Check(context.Background(), Options{Files: []string{cand}, HAProxyBin: fake, Policy: p, Untrusted: true})
		if err != nil || rep.OK || !rep.Syntax.PolicyRefused || !rep.Syntax.Skipped || rep.Summary.Error == 0 {
			t.Fatalf("%s: %+v, %v", name, rep.Syntax, err)
		}
		if _, err := os.Stat(ran); err == nil {
			t.Fatalf("%s: haproxy ran on a candidate the policy refused", name)
		}
	}
	// The refusals are reported whatever the registry, and only once.
	cand := writeMode(t, filepath.Join(t.TempDir(), "cand.cfg"), "global\n    setenv A b\n", 0o600)
	for _, reg := range []*Registry{nil, NewRegistry()} {
		rep, err := Check(context.Background(), Options{Files: []string{cand}, HAProxyBin: fake, Policy: &Policy{}, Registry: reg})
		if err != nil || len(rep.Findings) != 1 || rep.Findings[0].Rule != "PO004" || rep.Summary.Error != 1 {
			t.Fatalf("registry %v: %+v, %v", reg, rep.Findings, err)
		}
	}
	// A candidate the policy lets through is checked.
	cand = writeMode(t, filepath.Join(t.TempDir(), "cand.cfg"), "global\n    log /dev/log local0\n", 0o600)
	rep, err := Check(context.Background(), Options{Files: []string{cand}, HAProxyBin: fake, Policy: &Policy{}})
	if err != nil || !rep.OK || rep.Syntax.PolicyRefused {
		t.Fatalf("allowed candidate: %+v, %v", rep.Syntax, err)
	}
	if _, err := os.Stat(ran); err != nil {
		t.Fatal("haproxy did not run on a candidate the policy allows")
	}
}

// TestMarkersNeverAppear is issue 17's acceptance with the real haproxy:
// a candidate whose program section, Lua and external check would each
// create a marker file. With the policy on, it is refused before haproxy
// reads it. With the policy off, the untrusted check runs it: haproxy -c
// never starts programs or external checks, and its Lua runs as nobody,
// who cannot write where root writes. The control, a trusted check as
// root, shows the Lua marker does appear then.
func TestMarkersNeverAppear(t *testing.T) {
	requireRoot(t)
	dir := openDir(t)
	marker := func(name string) string { return filepath.Join(dir, name+"-was-here") }
	script := writeMode(t, filepath.Join(dir, "check.sh"), "#!/bin/sh\ntouch "+marker("external-check")+"\n", 0o755)
	lua := writeMode(t, filepath.Join(dir, "evil.lua"), `os.execute("touch `+marker("lua")+`")`+"\n", 0o644)
	body := "global\n    master-worker\n    external-check\n    insecure-fork-wanted\n"
	if luaBuild(t) {
		body += "    lua-load " + lua + "\n"
	}
	body += "program evil\n    command /bin/touch " + marker("program") + "\n" +
		strings.TrimPrefix(devCfg("default_backend b"), "global\n") +
		"backend b\n    option external-check\n    external-check command " + script + "\n    server s 127.0.0.1:1 check inter 100ms\n"
	cand := writeMode(t, filepath.Join(t.TempDir(), "cand.cfg"), body, 0o600)
	markers := []string{marker("program"), marker("lua"), marker("external-check")}
	none := func(what string) {
		t.Helper()
		for _, m := range markers {
			if _, err := os.Stat(m); err == nil {
				t.Errorf("%s: %s appeared", what, m)
			}
		}
	}

	p := &Policy{AllowedPaths: []string{"/etc/haproxy"}}
	rep, err := Check(t.Context(), Options{Files: []string{cand}, HAProxyBin: testbed.HAProxyBin(), Policy: p, Untrusted: true})
	if err != nil || rep.OK || !rep.Syntax.PolicyRefused {
		t.Fatalf("policy on: %+v, %v", rep.Syntax, err)
	}
	for _, id := range []string{"PO001", "PO003"} {
		found := false
		for _, f := range rep.Findings {
			found = found || f.Rule == id
		}
		if !found {
			t.Errorf("policy on: no %s finding in %+v", id, rep.Findings)
		}
	}
	none("policy on")

	rep, err = Check(t.Context(), Options{Files: []string{cand}, HAProxyBin: testbed.HAProxyBin(), Untrusted: true})
	if err != nil || rep.Syntax.PolicyRefused || !rep.Syntax.Untrusted {
		t.Fatalf("policy off, untrusted: %+v, %v", rep.Syntax, err)
	}
	none("policy off, untrusted check")

	if !luaBuild(t) {
		return
	}
	if _, err := Check(t.Context(), Options{Files: []string{cand}, HAProxyBin: testbed.HAProxyBin()}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker("lua")); err != nil {
		t.Errorf("control: a trusted check's Lua did not run, so this test cannot fail")
	}
	for _, m := range []string{marker("program"), marker("external-check")} {
		if _, err := os.Stat(m); err == nil {
			t.Errorf("control: haproxy -c ran %s", m)
		}
	}
}
