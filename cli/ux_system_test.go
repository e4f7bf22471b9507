package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// Tier 3, issue 18 items 1, 2 and 5: what an operator sees at 3 a.m.,
// from the real binary in the box against Debian's haproxy.service.

type uxBox struct {
	s                 *testbed.Sandbox
	bin, yaml, state  string
	listen, backend   string
	cfg               string // the running config's text
	statsSock, runDir string
}

// uxConfig is a TCP proxy with a stats socket; weight sets s1's weight.
func uxConfig(listen, backend, stats string, weight int, extra string) string {
	return fmt.Sprintf(`global
	maxconn 256
	stats socket %s mode 600 level admin

defaults
	mode tcp
	retries 0
	timeout connect 1s
	timeout client 30s
	timeout server 30s

frontend fe_test
	bind %s
	default_backend be_test

backend be_test
	server s1 %s weight %d
%s`, stats, listen, backend, weight, extra)
}

func newUXBox(t *testing.T) *uxBox {
	t.Helper()
	testbed.Require(t, testbed.TierSystem)
	b := &uxBox{s: testbed.Boot(t), bin: testbed.BuildHaguard(t)}
	b.runDir = b.s.Dir()
	b.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.backend = testbed.TCPBackend(t)
	b.statsSock = filepath.Join(b.runDir, "stats.sock")
	b.cfg = uxConfig(b.listen, b.backend, b.statsSock, 10, "")
	b.s.StartHAProxy(t, b.cfg)
	b.state = filepath.Join(b.runDir, "state")
	b.yaml = filepath.Join(b.runDir, "haguard.yaml")
	y := "state_dir: " + strconv.Quote(b.state) + "\nreload:\n  settle_timeout: 10s\n  min_interval: 0s\nprobe:\n  count: 4\n  timeout: 2s\n"
	if err := os.WriteFile(b.yaml, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *uxBox) file(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(b.runDir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs haguard in the box (stdout and stderr are pipes).
func (b *uxBox) run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	argv := append(append([]string{"env"}, env...), append([]string{b.bin, "--config-file", b.yaml}, args...)...)
	out, errOut, err := b.s.Run(ctx, argv...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, errOut, 0
	case errors.As(err, &ee):
		return out, errOut, ee.ExitCode()
	}
	t.Fatalf("run haguard %v: %v", args, err)
	return "", "", -1
}

// A refusal reads like nginx -t: each ALERT once as file:line: error:
// message, no NOTICE line, nothing said twice (stdout and stderr
// together), "config invalid" rather than "config valid"; history shows
// the ALERT; check counts it.
func TestRefusalReadsLikeNginx(t *testing.T) {
	b := newUXBox(t)
	typo := b.file(t, "typo.cfg", strings.Replace(b.cfg, "\tserver s1 ", "\tserver-typo s1 ", 1))
	out, errOut, code := b.run(t, nil, "reload", "--candidate", typo, "--reason", "typo fix")
	t.Logf("reload (exit %d):\n%s\nstderr:\n%s", code, out, errOut)
	alert := b.s.HAProxyConfig() + ":17: error: unknown keyword 'server-typo' in 'backend' section"
	both := out + errOut
	if code != exitNegative || strings.Count(both, alert) != 1 || strings.Contains(both, "[NOTICE]") || strings.Contains(both, "[ALERT]") ||
		!strings.Contains(out, "[!] config invalid: haproxy -c found 1 error(s), above") || strings.Contains(out, "config valid") ||
		strings.Contains(out, "reason:") {
		t.Fatalf("want the ALERT once (%q), no raw haproxy lines, no reason repeating it", alert)
	}
	hist, _, _ := b.run(t, nil, "history")
	if !strings.Contains(hist, "check: haproxy -c: "+alert) {
		t.Fatalf("history does not show the ALERT:\n%s", hist)
	}
	chk, _, code := b.run(t, nil, "check", "-f", typo)
	t.Logf("check (exit %d):\n%s", code, chk)
	if code != exitNegative || !strings.Contains(chk, typo+":17: error: unknown keyword 'server-typo'") ||
		!strings.Contains(chk, "haguard check FAILED: haproxy -c found 1 error(s); lint: ") || strings.Contains(chk, "FAILED: 0 error(s), 0 warning(s)") {
		t.Fatalf("check does not count haproxy's alert")
	}
}

// On a terminal each stage is shown when it starts (a spinner) and when
// it ends, with its duration; through a pipe there is no control
// character at all and the report is the plain checklist.
func TestReloadProgressOnATTY(t *testing.T) {
	b := newUXBox(t)
	cand := b.file(t, "w20.cfg", uxConfig(b.listen, b.backend, b.statsSock, 20, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tty, err := b.s.RunTTY(ctx, 120, "", b.bin, "--config-file", b.yaml, "reload", "--candidate", cand)
	t.Logf("on a terminal (%v):\n%q", err, tty)
	if err != nil {
		t.Fatal(err)
	}
	// Every stage ends on its own line, with its duration, in order.
	var ends []string
	endLine := regexp.MustCompile(`(?m)^\[x\] (.*) \((\d+ ms|\d+\.\d s)\)\r?$`)
	screen := finalScreen(tty)
	for _, m := range endLine.FindAllStringSubmatch(screen, -1) {
		ends = append(ends, m[1])
	}
	prefixes := []string{"config valid: haproxy -c: valid", "saved ", "installed sha256 ", "reload job done", "new generation: generation 1 running",
		"ghosts: 0, divergent: 0", "probes: 4/4 OK"}
	if len(ends) != len(prefixes) {
		t.Fatalf("stage lines %q\nscreen:\n%s", ends, screen)
	}
	for i, p := range prefixes {
		if !strings.Contains(ends[i], strings.TrimSpace(p)) {
			t.Fatalf("stage line %d is %q, want %q\nscreen:\n%s", i, ends[i], p, screen)
		}
	}
	// Each stage was shown running: a spinner line, rewritten in place.
	for _, verb := range []string{"checking (lint + haproxy -c)", "reloading", "settling", "probing"} {
		if !regexp.MustCompile(`\r\x1b\[K. ` + regexp.QuoteMeta(verb)).MatchString(tty) {
			t.Errorf("no spinner line for %q", verb)
		}
	}
	if !strings.Contains(screen, "COMMITTED in ") || strings.Count(screen, "haguard reload 2") != 1 {
		t.Fatalf("verdict or header:\n%s", screen)
	}

	// A rollback is followed as it happens: its steps print as they come.
	dead := b.file(t, "dead.cfg", uxConfig(b.listen, testbed.DeadAddr(t), b.statsSock, 20, ""))
	tty, err = b.s.RunTTY(ctx, 120, "", b.bin, "--config-file", b.yaml, "reload", "--candidate", dead)
	screen = finalScreen(tty)
	t.Logf("rollback on a terminal (%v):\n%s", err, screen)
	for _, re := range []string{`(?m)^\[!\] probes: 0/4 OK.* \(\d+ ms\)\r?$`, `(?m)^    rollback: reloading haproxy\.service, waiting for the job\r?$`,
		`(?m)^    rollback: probes: 4/4 OK\r?$`, `(?m)^\[x\] rolled back: restored sha256 .* \(\d+ ms\)\r?$`, `(?m)^ROLLED BACK in `} {
		if !regexp.MustCompile(re).MatchString(screen) {
			t.Errorf("rollback screen lacks %s", re)
		}
	}

	// Through a pipe: no spinner, no control sequence.
	cand2 := b.file(t, "w30.cfg", uxConfig(b.listen, b.backend, b.statsSock, 30, ""))
	out, errOut, code := b.run(t, nil, "reload", "--candidate", cand2)
	if code != 0 || strings.ContainsAny(out+errOut, "\r\x1b") || !strings.Contains(out, "[x] config valid") || !strings.Contains(out, "COMMITTED") {
		t.Fatalf("piped (exit %d):\n%q\nstderr %q", code, out, errOut)
	}
}

// finalScreen is what a terminal shows once the output is done: each
// "\r\x1b[K" clears the line it starts.
func finalScreen(raw string) string {
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(raw, "\r\n", "\n"), "\n") {
		if i := strings.LastIndex(l, "\r\x1b[K"); i >= 0 {
			l = l[i+len("\r\x1b[K"):]
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// A reload that waits for the lock says at once who holds it: pid,
// command, who, reason, since; in the event stream too. --format jsonl is
// one JSON object per line, the result last.
func TestLockWaitNamesTheHolder(t *testing.T) {
	b := newUXBox(t)
	first := b.file(t, "w20.cfg", uxConfig(b.listen, b.backend, b.statsSock, 20, ""))
	holder := b.s.Start(t, "env", "HAGUARD_TEST_PAUSE_AT=settle", "HAGUARD_TEST_PAUSE_FOR=4s",
		b.bin, "--config-file", b.yaml, "reload", "--candidate", first, "--reason", "first change")
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(holder.Output(), "HAGUARD_TEST_PAUSED settle") {
		if time.Now().After(deadline) || !holder.Alive() {
			t.Fatalf("the first reload did not pause: %s", holder.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	second := b.file(t, "w30.cfg", uxConfig(b.listen, b.backend, b.statsSock, 30, ""))
	out, errOut, code := b.run(t, nil, "--format", "jsonl", "reload", "--candidate", second, "--reason", "second")
	t.Logf("jsonl (exit %d):\n%s\nstderr:\n%s", code, out, errOut)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var types []string
	var lockWait reload.Event
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, l := range lines {
		var e struct {
			reload.Event
			Result *reload.Result `json:"result"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %d is not one JSON object: %v: %s", i+1, err, l)
		}
		types = append(types, e.Type)
		if e.Type == reload.EventLockWait {
			lockWait = e.Event
		}
		if e.Type == "result" && (i != len(lines)-1 || e.Result == nil || !e.Result.OK) {
			t.Fatalf("result line %d of %d: %s", i+1, len(lines), l)
		}
	}
	re := regexp.MustCompile(`^pid \d+ \(haguard reload by root, reason "first change", since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$`)
	if types[0] != reload.EventLockWait || !re.MatchString(lockWait.Detail) || types[len(types)-1] != "result" {
		t.Fatalf("events %v; lock wait %q", types, lockWait.Detail)
	}
	<-holder.Done()

	// Human, through a pipe: said at once on stderr.
	holder = b.s.Start(t, "env", "HAGUARD_TEST_PAUSE_AT=probe", "HAGUARD_TEST_PAUSE_FOR=3s",
		b.bin, "--config-file", b.yaml, "reload", "--candidate", first, "--reason", "third")
	for !strings.Contains(holder.Output(), "HAGUARD_TEST_PAUSED probe") {
		if !holder.Alive() {
			t.Fatalf("the holder did not pause: %s", holder.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, errOut, code = b.run(t, nil, "reload", "--candidate", second)
	sc := bufio.NewScanner(strings.NewReader(errOut))
	found := false
	for sc.Scan() {
		found = found || regexp.MustCompile(`^haguard: waiting for the lock held by pid \d+ \(haguard reload by root, reason "third", since `).MatchString(sc.Text())
	}
	if code != 0 || !found {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}

// haguard diff and reload --dry-run show what a candidate changes against
// what runs, marking what the master CLI could apply without a reload.
func TestDiffAndDryRun(t *testing.T) {
	b := newUXBox(t)
	if _, _, code := b.run(t, nil, "reload", "--force"); code != 0 {
		t.Fatalf("first reload: exit %d", code)
	}
	extra := "\tserver s2 " + b.backend + " disabled\n"
	cand := b.file(t, "cand.cfg", uxConfig(b.listen, b.backend, b.statsSock, 20, extra))
	out, _, code := b.run(t, nil, "diff", "--candidate", cand)
	t.Logf("diff (exit %d):\n%s", code, out)
	for _, want := range []string{"diff against the running config set ", "backend be_test",
		"~ server s1: " + b.backend + " weight 10 -> " + b.backend + " weight 20", "runtime: set server be_test/s1 weight 20",
		"+ server s2: ", "needs a reload", "2 change(s): 1 appliable at runtime, 1 need a reload"} {
		if !strings.Contains(out, want) {
			t.Fatalf("diff lacks %q", want)
		}
	}
	js, _, code := b.run(t, nil, "--format", "json", "reload", "--dry-run", "--candidate", cand)
	var res reload.Result
	if err := json.Unmarshal([]byte(js), &res); err != nil || code != 0 {
		t.Fatalf("dry run json (exit %d): %v\n%s", code, err, js)
	}
	if !res.DryRun || len(res.Plan) == 0 || res.Diff == nil || res.Diff.Runtime != 1 || res.Diff.Reload != 1 {
		t.Fatalf("dry run: %+v", res)
	}
	human, _, _ := b.run(t, nil, "reload", "--dry-run", "--candidate", cand)
	if !strings.Contains(human, "plan: reload haproxy.service") || !strings.Contains(human, "runtime: set server be_test/s1 weight 20") ||
		!strings.Contains(human, "dry run: nothing changed") {
		t.Fatalf("dry run human:\n%s", human)
	}
}

// A reload with haproxy stopped says so at once, and as a failed check,
// not as "config valid".
func TestStoppedHAProxyIsSaidAtOnce(t *testing.T) {
	b := newUXBox(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := b.s.Systemctl(ctx, "stop", "haproxy.service"); err != nil {
		t.Fatal(err)
	}
	out, _, code := b.run(t, nil, "reload", "--candidate", b.file(t, "w20.cfg", uxConfig(b.listen, b.backend, b.statsSock, 20, "")))
	t.Logf("exit %d:\n%s", code, out)
	if code != exitNegative || !strings.Contains(out, "[!] check failed: ") || !strings.Contains(out, "unit haproxy.service is inactive, haproxy is not running") ||
		strings.Contains(out, "config valid") {
		t.Fatal("want a failed check naming the stopped unit")
	}
}
