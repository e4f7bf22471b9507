package reload_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// Tier 3: the haguard binary runs inside the sandbox (same PID namespace
// as systemd, default bus), against Debian's haproxy.service.

func TestMain(m *testing.M) { os.Exit(testbed.RunMain(m)) }

type box struct {
	s      *testbed.Sandbox
	bin    string
	yaml   string
	state  string
	listen string
	good   string // the running config
}

// newBox boots a sandbox running haproxy.service with a TCP proxy from
// listen to a greeting backend, and writes a haguard.yaml for it.
func newBox(t *testing.T) *box {
	t.Helper()
	testbed.Require(t, testbed.TierSystem)
	b := &box{s: testbed.Boot(t), bin: testbed.BuildHaguard(t)}
	b.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.good = testbed.TCPProxyConfig(b.listen, testbed.TCPBackend(t))
	b.s.StartHAProxy(t, b.good)
	b.state = filepath.Join(b.s.Dir(), "state")
	b.yaml = filepath.Join(b.s.Dir(), "haguard.yaml")
	writeYAML(t, b)
	return b
}

// haguard runs the binary in the box and returns stdout, stderr and the
// exit code.
func (b *box) haguard(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	argv := append([]string{"env"}, env...)
	argv = append(argv, b.bin, "--config-file", b.yaml)
	argv = append(argv, args...)
	out, errOut, err := b.s.Run(ctx, argv...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, errOut, 0
	case errors.As(err, &ee):
		return out, errOut, ee.ExitCode()
	default:
		t.Fatalf("run haguard: %v", err)
		return "", "", -1
	}
}

func (b *box) reloadJSON(t *testing.T, env []string, args ...string) (reload.Result, int) {
	t.Helper()
	out, errOut, code := b.haguard(t, env, append([]string{"--format", "json", "reload"}, args...)...)
	var res reload.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("reload JSON: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	t.Logf("reload %v: exit %d, stages %+v", args, code, res.Stages)
	return res, code
}

func (b *box) showProc(t *testing.T) *master.ShowProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 50 {
		out, err := b.s.MasterCLI(ctx, "show proc")
		if err == nil {
			if sp, err := master.ParseShowProc(out); err == nil {
				return sp
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("master CLI never answered show proc")
	return nil
}

func (b *box) candidate(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(b.s.Dir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (b *box) disk(t *testing.T) string {
	t.Helper()
	d, err := os.ReadFile(b.s.HAProxyConfig())
	if err != nil {
		t.Fatal(err)
	}
	return string(d)
}

// traffic is the seed runbook's 20-connection loop through haproxy.
func (b *box) traffic(t *testing.T) (ok, fail int) { return b.trafficN(t, 20) }

func (b *box) trafficN(t *testing.T, n int) (ok, fail int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return testbed.ConnectLoop(ctx, b.listen, n, testbed.Greeting)
}

func TestSystemSyntaxErrorRefused(t *testing.T) {
	b := newBox(t)
	before := b.showProc(t).Reloads
	bad := b.candidate(t, "bad.cfg", b.good+"\nfrontend broken\n\tbind-this-is-not-a-keyword\n")
	res, code := b.reloadJSON(t, nil, "--candidate", bad)
	if code != 1 || res.OK || len(res.Stages) != 1 || res.Stages[0].Name != "check" {
		t.Fatalf("exit %d, result %+v", code, res)
	}
	if b.disk(t) != b.good {
		t.Fatal("the running file was touched")
	}
	if after := b.showProc(t).Reloads; after != before {
		t.Fatalf("master reload counter moved %d -> %d", before, after)
	}
}

func TestSystemDeadBackendRolledBack(t *testing.T) {
	b := newBox(t)
	if ok, fail := b.traffic(t); fail != 0 {
		t.Fatalf("setup traffic %d/%d", ok, ok+fail)
	}
	dead := b.candidate(t, "dead.cfg", testbed.TCPProxyConfig(b.listen, testbed.DeadAddr(t)))
	res, code := b.reloadJSON(t, nil, "--candidate", dead)
	if code != 1 || !res.RolledBack || res.OK {
		t.Fatalf("exit %d, result %+v", code, res)
	}
	if res.Probes.Failed == 0 {
		t.Fatalf("the probe should have failed on the dead backend: %+v", res.Probes)
	}
	if b.disk(t) != b.good {
		t.Fatal("the running file was not restored")
	}
	if ok, fail := b.traffic(t); fail != 0 {
		t.Fatalf("traffic after rollback: %d OK, %d failed", ok, fail)
	}
	es, err := reload.ReadHistory(b.state)
	if err != nil || len(es) != 1 || es[0].Outcome != reload.OutcomeRolledBack {
		t.Fatalf("history %+v %v", es, err)
	}
	for _, sum := range []string{es[0].BeforeSHA256, es[0].AfterSHA256} {
		if _, err := os.Stat(filepath.Join(b.state, "history", "blobs", sum)); err != nil {
			t.Fatalf("history lacks a config: %v", err)
		}
	}
	out, _, code := b.haguard(t, nil, "history")
	if code != 0 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("haguard history: exit %d\n%s", code, out)
	}
}

// A status while a reload runs shows it in progress, not as a dead run,
// and exits 0; once it is done, status is clean.
func TestSystemStatusDuringReload(t *testing.T) {
	b := newBox(t)
	cand := b.candidate(t, "v2.cfg", strings.Replace(b.good, "timeout client", "timeout client 31s\n    #", 1))
	p := b.s.Start(t, "env", "HAGUARD_TEST_PAUSE_AT=settle", "HAGUARD_TEST_PAUSE_FOR=3s",
		b.bin, "--config-file", b.yaml, "reload", "--candidate", cand)
	for i := 0; !strings.Contains(p.Output(), "HAGUARD_TEST_PAUSED settle"); i++ {
		if i > 600 || !p.Alive() {
			t.Fatalf("never paused at settle: %s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, _, code := b.haguard(t, nil, "status")
	if code != 0 || !strings.Contains(st, "in progress (pid") || !strings.Contains(st, "stage settle") || strings.Contains(st, "interrupted") {
		t.Fatalf("status during the reload: exit %d\n%s", code, st)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("the reload failed: %v\n%s", err, p.Output())
	}
	if st, _, code := b.haguard(t, nil, "status"); code != 0 || strings.Contains(st, "in progress") {
		t.Fatalf("status after the reload: exit %d\n%s", code, st)
	}
}

func TestSystemSIGKILLDuringSettle(t *testing.T) {
	b := newBox(t)
	dead := b.candidate(t, "dead.cfg", testbed.TCPProxyConfig(b.listen, testbed.DeadAddr(t)))
	p := b.s.Start(t, "env", "HAGUARD_TEST_PAUSE_AT=settle", "HAGUARD_TEST_PAUSE_FOR=2m",
		b.bin, "--config-file", b.yaml, "reload", "--candidate", dead)
	for i := 0; !strings.Contains(p.Output(), "HAGUARD_TEST_PAUSED settle"); i++ {
		if i > 600 || !p.Alive() {
			t.Fatalf("never paused at settle: %s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Kill() // SIGKILL, with the dead-backend config installed and reloaded
	// The reload job is done once the master was signalled, before its new
	// workers are up (that is what settle waits for, and it was killed):
	// wait, bounded, for the dead-backend generation to take the traffic.
	for i := 0; ; i++ {
		if _, fail := b.trafficN(t, 2); fail > 0 {
			break
		}
		if i >= 100 {
			t.Fatal("setup: the dead-backend config should be serving")
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, _, code := b.haguard(t, nil, "status")
	if code != 1 || !strings.Contains(st, "interrupted: transaction") {
		t.Fatalf("status after the kill: exit %d\n%s", code, st)
	}
	res, code := b.reloadJSON(t, nil)
	if len(res.Stages) == 0 || res.Stages[0].Name != reload.StageRecover || !res.Stages[0].OK ||
		!strings.Contains(res.Stages[0].Detail, "died at stage settle after install; rolled back") {
		t.Fatalf("no recovery reported: %+v", res.Stages)
	}
	if code != 0 {
		t.Fatalf("exit %d after recovery", code)
	}
	if b.disk(t) != b.good {
		t.Fatal("the previous config was not restored")
	}
	if ok, fail := b.traffic(t); fail != 0 {
		t.Fatalf("traffic after recovery: %d OK, %d failed", ok, fail)
	}
}

func TestSystemConcurrentReloadsSerialize(t *testing.T) {
	b := newBox(t)
	before := b.showProc(t).Reloads
	backend := testbed.TCPBackend(t)
	cands := []string{
		b.candidate(t, "a.cfg", testbed.TCPProxyConfig(b.listen, backend)+"\n# a\n"),
		b.candidate(t, "b.cfg", testbed.TCPProxyConfig(b.listen, backend)+"\n# b\n"),
	}
	var wg sync.WaitGroup
	codes := make([]int, len(cands))
	for i, c := range cands {
		wg.Go(func() { _, _, codes[i] = b.haguard(t, nil, "reload", "--candidate", c) })
	}
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("exit codes %v", codes)
	}
	es, err := reload.ReadHistory(b.state)
	if err != nil || len(es) != 2 || es[0].Outcome != reload.OutcomeCommitted || es[1].Outcome != reload.OutcomeCommitted {
		t.Fatalf("history %+v %v", es, err)
	}
	// History ids are taken under the lock: es[1] ran after es[0] and saw
	// es[0]'s config as the running one.
	if es[1].BeforeSHA256 != es[0].AfterSHA256 {
		t.Fatal("the second run did not see the first one's config as running: they overlapped")
	}
	if after := b.showProc(t).Reloads; after != before+2 {
		t.Fatalf("master reloads %d -> %d, want +2", before, after)
	}
	if ok, fail := b.traffic(t); fail != 0 {
		t.Fatalf("traffic %d OK, %d failed", ok, fail)
	}
}

// The fact the transaction is built around: a config that passes -c but
// cannot bind makes the reload job end "done" while the master counts a
// failed load and the old workers keep serving. haguard must not commit.
func TestSystemLoadFailureIsNotACommit(t *testing.T) {
	b := newBox(t)
	before := b.showProc(t)
	// 192.0.2.1 (TEST-NET-1) is not local: haproxy -c accepts the config,
	// the new worker cannot bind it.
	cand := b.candidate(t, "nonlocal.cfg", strings.Replace(b.good, "bind "+b.listen, "bind "+b.listen+"\n\tbind 192.0.2.1:"+strings.Split(b.listen, ":")[1], 1))
	res, code := b.reloadJSON(t, nil, "--candidate", cand)
	var settle reload.Stage
	for _, s := range res.Stages {
		if s.Name == reload.StageSettle {
			settle = s
		}
	}
	if code != 1 || !res.RolledBack || settle.OK || !strings.Contains(settle.Error, "failed reload") {
		t.Fatalf("exit %d, rolled back %v, settle %+v", code, res.RolledBack, settle)
	}
	if b.disk(t) != b.good {
		t.Fatal("the running file was not restored")
	}
	after := b.showProc(t)
	if after.FailedReloads != 0 || after.Reloads != before.Reloads+2 {
		t.Fatalf("master after rollback: reloads %d -> %d, failed %d", before.Reloads, after.Reloads, after.FailedReloads)
	}
	if ok, fail := b.traffic(t); fail != 0 {
		t.Fatalf("traffic after rollback: %d OK, %d failed", ok, fail)
	}
}

func TestSystemRollbackCommand(t *testing.T) {
	b := newBox(t)
	backend := testbed.TCPBackend(t)
	v2 := testbed.TCPProxyConfig(b.listen, backend) + "\n# v2\n"
	if _, code := b.reloadJSON(t, nil, "--candidate", b.candidate(t, "v2.cfg", v2)); code != 0 {
		t.Fatalf("reload v2: exit %d", code)
	}
	out, errOut, code := b.haguard(t, nil, "rollback", "--reason", "test")
	if code != 0 || b.disk(t) != b.good {
		t.Fatalf("rollback: exit %d\n%s\n%s", code, out, errOut)
	}
	es, _ := reload.ReadHistory(b.state)
	if len(es) != 2 || !strings.HasPrefix(es[1].Reason, "test (rollback of "+es[0].ID) || es[1].AfterSHA256 != es[0].BeforeSHA256 {
		t.Fatalf("history %+v", es)
	}
	if _, _, code := b.haguard(t, nil, "rollback", "no-such-id"); code != 2 {
		t.Fatalf("rollback of an unknown id: exit %d, want 2", code)
	}
	st, _, code := b.haguard(t, nil, "status")
	if code != 0 || !strings.Contains(st, "drift:      none") {
		t.Fatalf("status after rollback: exit %d\n%s", code, st)
	}
}

// A master that cannot take the reload signal (here: stopped once the
// transaction read it, so SIGUSR2 stays pending as in haproxy #3229) is
// named, with the remedy, exit 3; the candidate is taken off the disk.
// status says the same, and a reload refuses at once, until the master
// takes the signal.
func TestSystemStuckMasterIsNamed(t *testing.T) {
	b := newBox(t)
	y, err := os.ReadFile(b.yaml)
	if err != nil {
		t.Fatal(err)
	}
	b.s.WriteFiles(t, map[string]string{b.yaml: strings.Replace(string(y), "settle_timeout: 10s", "settle_timeout: 3s", 1)})
	out, err := b.s.Systemctl(t.Context(), "show", "-p", "MainPID", "--value", "haproxy.service")
	if err != nil {
		t.Fatal(err)
	}
	var boxPID int
	if _, err := fmt.Sscan(strings.TrimSpace(out), &boxPID); err != nil || boxPID == 0 {
		t.Fatalf("MainPID %q: %v", out, err)
	}
	hostPID, err := b.s.HostPIDOf(boxPID)
	if err != nil {
		t.Fatal(err)
	}
	resumed := true
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(hostPID, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)

	cand := b.candidate(t, "v2.cfg", b.good+"# v2\n")
	p := b.s.Start(t, "env", "HAGUARD_TEST_PAUSE_AT=reload", "HAGUARD_TEST_PAUSE_FOR=2s",
		b.bin, "--config-file", b.yaml, "--format", "json", "reload", "--candidate", cand)
	for i := 0; !strings.Contains(p.Output(), "HAGUARD_TEST_PAUSED reload"); i++ {
		if i > 600 || !p.Alive() {
			t.Fatalf("never paused at reload: %s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(hostPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed = false
	var ee *exec.ExitError
	if err := p.Err(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("reload: %v, want exit 3\n%s", err, p.Output())
	}
	msg := p.Output()
	for _, want := range []string{fmt.Sprintf("master pid %d has SIGUSR2 (reload) pending", boxPID), "#3229", "systemctl restart haproxy.service"} {
		if !strings.Contains(msg, want) {
			t.Errorf("reload output lacks %q:\n%s", want, msg)
		}
	}
	if b.disk(t) != b.good {
		t.Fatal("the candidate stayed on disk")
	}
	st, _, code := b.haguard(t, nil, "status")
	if code != 3 || !strings.Contains(st, "STUCK") {
		t.Errorf("status with the master stuck: exit %d\n%s", code, st)
	}
	_, errOut, code := b.haguard(t, nil, "reload", "--candidate", cand)
	if code != 3 || !strings.Contains(errOut+st, "SIGUSR2") {
		t.Errorf("a reload while the master is stuck: exit %d\n%s", code, errOut)
	}
	resume()
	// The master takes the pending signal and loads what is on disk: the
	// config that ran before.
	for i := 0; ; i++ {
		if ok, _ := b.trafficN(t, 2); ok == 2 {
			break
		}
		if i > 100 {
			t.Fatal("haproxy does not serve after SIGCONT")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
