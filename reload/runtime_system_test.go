package reload_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/runtime"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// runtimeConfig is a TCP proxy to s1 (s2 disabled, so a held connection
// lands on s1) that reads a map.
func runtimeConfig(listen, s1, s2, mapFile, extra string) string {
	return fmt.Sprintf(`global
    maxconn 256

defaults
    mode tcp
    retries 0
    timeout connect 1s
    timeout client 60s
    timeout server 60s

frontend fe_test
    bind %s
    tcp-request content set-var(sess.c) src,map_ip(%s,none)
%s    default_backend be_test

backend be_test
    server s1 %s weight 10
    server s2 %s weight 10 disabled
`, listen, mapFile, extra, s1, s2)
}

type runtimeBox struct {
	*box
	mapFile string
	s1, s2  string
	held    net.Conn
}

// newRuntimeBox boots haproxy.service on runtimeConfig, holds a
// connection on its worker and reloads through haguard: one current
// worker, one old worker holding a session on be_test/s1.
func newRuntimeBox(t *testing.T) *runtimeBox {
	t.Helper()
	testbed.Require(t, testbed.TierSystem)
	b := &runtimeBox{box: &box{s: testbed.Boot(t), bin: testbed.BuildHaguard(t)}}
	b.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.s1, b.s2 = testbed.TCPBackend(t), testbed.TCPBackend(t)
	b.mapFile = filepath.Join(b.s.Dir(), "clients.map")
	if err := os.WriteFile(b.mapFile, []byte("10.0.0.1 a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.good = runtimeConfig(b.listen, b.s1, b.s2, b.mapFile, "")
	b.s.StartHAProxy(t, b.good)
	b.state = filepath.Join(b.s.Dir(), "state")
	b.yaml = filepath.Join(b.s.Dir(), "haguard.yaml")
	writeYAML(t, b.box)
	b.held = b.s.HoldConnection(t, b.listen)
	if _, code := b.reloadJSON(t, nil, "--force"); code != 0 {
		t.Fatalf("reload: exit %d", code)
	}
	if sp := b.showProc(t); len(sp.Workers) != 1 || len(sp.OldWorkers) != 1 {
		t.Fatalf("want one current and one old worker: %+v", sp)
	}
	return b
}

type runtimeOut struct {
	ID     string         `json:"id"`
	OK     bool           `json:"ok"`
	Change runtime.Report `json:"change"`
	Stages []reload.Stage `json:"stages"`
	Error  string         `json:"error"`
	Drain  *struct {
		Done     bool `json:"done"`
		TimedOut bool `json:"timed_out"`
		Sessions int  `json:"sessions"`
	} `json:"drain"`
}

func (b *runtimeBox) change(t *testing.T, env []string, args ...string) (runtimeOut, int) {
	t.Helper()
	out, errOut, code := b.haguard(t, env, append([]string{"--format", "json"}, args...)...)
	var r runtimeOut
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %v\nstdout: %s\nstderr: %s", args, err, out, errOut)
	}
	t.Logf("%v: exit %d %+v %s", args, code, r.Change, errOut)
	return r, code
}

// state reads be_test/server in process pid through the master CLI.
func (b *runtimeBox) srvState(t *testing.T, pid int32, server string) runtime.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := b.s.MasterCLI(ctx, fmt.Sprintf("@!%d show servers state be_test", pid))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := runtime.ParseServersState(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Name == server {
			return s
		}
	}
	t.Fatalf("no %s in %s", server, out)
	return runtime.Server{}
}

func (b *runtimeBox) mapIn(t *testing.T, pid int32) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := b.s.MasterCLI(ctx, fmt.Sprintf("@!%d show map %s", pid, b.mapFile))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameAsFile compares every server as the current worker holds it with a
// fresh parse of the config file: maint against disabled, weight, address.
func (b *runtimeBox) sameAsFile(t *testing.T) {
	t.Helper()
	cur := b.showProc(t).Workers[0].PID
	read := func(p string) ([]byte, bool) { d, err := os.ReadFile(p); return d, err == nil }
	for _, name := range []string{"s1", "s2"} {
		sl, err := runtime.FindServer([]string{b.s.HAProxyConfig()}, read, "be_test", name)
		if err != nil {
			t.Fatal(err)
		}
		if d := runtime.Drift(b.srvState(t, cur, name), runtime.ParseServerLine(sl.Fields)); len(d) > 0 {
			t.Errorf("%s: runtime and config differ: %v", name, d)
		}
	}
}

// Acceptance: server set --state drain reaches the current worker; the
// old worker (2.6) refuses on its stopping proxy and the report names it
// with its session, exit 0; a weight change is written, and the file
// equals what runs.
func TestSystemRuntimeServerSet(t *testing.T) {
	b := newRuntimeBox(t)
	sp := b.showProc(t)
	cur, old := sp.Workers[0].PID, sp.OldWorkers[0].PID
	r, code := b.change(t, nil, "server", "set", "be_test/s1", "--state", "drain")
	if code != 0 || !r.OK || len(r.Change.Processes) != 2 {
		t.Fatalf("exit %d %+v", code, r)
	}
	if s := b.srvState(t, cur, "s1"); s.State != runtime.StateDrain {
		t.Fatalf("current worker: %+v", s)
	}
	o := r.Change.Processes[1]
	switch {
	case o.PID != old:
		t.Fatalf("process 2 is %d, want the old worker %d", o.PID, old)
	case o.Outcome == runtime.Refused:
		if o.Answer != "Proxy is disabled." || o.Sessions != 1 {
			t.Fatalf("old worker's refusal: %+v", o)
		}
	case o.Outcome == runtime.Applied:
		if s := b.srvState(t, old, "s1"); s.State != runtime.StateDrain {
			t.Fatalf("old worker: %+v", s)
		}
	default:
		t.Fatalf("old worker: %+v", o)
	}
	human, _, code := b.haguard(t, nil, "server", "set", "be_test/s1", "--weight", "5")
	if code != 0 || !strings.Contains(human, "applied and written") {
		t.Fatalf("weight: exit %d\n%s", code, human)
	}
	if !strings.Contains(b.disk(t), "server s1 "+b.s1+" weight 5\n") {
		t.Fatalf("config:\n%s", b.disk(t))
	}
	r, code = b.change(t, nil, "server", "set", "be_test/s2", "--state", "ready", "--weight", "7")
	if code != 0 || !strings.Contains(b.disk(t), "server s2 "+b.s2+" weight 7\n") {
		t.Fatalf("s2 ready: exit %d %+v\n%s", code, r, b.disk(t))
	}
	b.sameAsFile(t)
	if s := b.srvState(t, cur, "s1"); s.State != runtime.StateDrain || s.Weight != 5 {
		t.Fatalf("current worker after the weight: %+v", s)
	}
	// The history and audit log say what changed; status sees no drift.
	es, err := reload.ReadHistory(b.state)
	if err != nil || len(es) != 4 || es[3].Runtime == "" || es[3].Outcome != reload.OutcomeCommitted {
		t.Fatalf("history %+v %v", es, err)
	}
	if st, _, code := b.haguard(t, nil, "status"); code != 0 || strings.Contains(st, "DRIFT") {
		t.Fatalf("status: exit %d\n%s", code, st)
	}
	// A weight set on the runtime API and not written is drift.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := b.s.MasterCLI(ctx, fmt.Sprintf("@!%d set server be_test/s2 weight 3", cur)); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("set weight: %q %v", out, err)
	}
	if st, _, code := b.haguard(t, nil, "status"); code != 1 || !strings.Contains(st, "DRIFT be_test/s2: weight 3, config 7") {
		t.Fatalf("status after a runtime-only change: exit %d\n%s", code, st)
	}
	if _, code := b.change(t, nil, "server", "set", "be_test/s2", "--weight", "7"); code != 0 {
		t.Fatal("weight back")
	}
	// haproxy -c accepts what was written.
	if _, _, code := b.haguard(t, nil, "check"); code > 1 {
		t.Fatalf("check of the written config: exit %d", code)
	}

	// The next reload keeps s1 in DRAIN in the new generation.
	res, code := b.reloadJSON(t, nil, "--force")
	if code != 0 || !strings.Contains(stageDetail(res, reload.StageRestore), "be_test/s1 state drain") {
		t.Fatalf("reload: exit %d, restore %q", code, stageDetail(res, reload.StageRestore))
	}
	cur = b.showProc(t).Workers[0].PID
	if s := b.srvState(t, cur, "s1"); s.State != runtime.StateDrain || s.Weight != 5 {
		t.Fatalf("s1 after the reload: %+v", s)
	}
	// A candidate that moves s1 to another address starts it fresh: UP,
	// ready, the weight its line says.
	s3 := testbed.TCPBackend(t)
	cand := b.candidate(t, "moved.cfg", strings.Replace(b.disk(t), "server s1 "+b.s1+" weight 5", "server s1 "+s3, 1))
	res, code = b.reloadJSON(t, nil, "--candidate", cand)
	if code != 0 || !strings.Contains(stageDetail(res, reload.StageRestore), "be_test/s1 (its line changed") {
		t.Fatalf("reload: exit %d, restore %q", code, stageDetail(res, reload.StageRestore))
	}
	cur = b.showProc(t).Workers[0].PID
	if s := b.srvState(t, cur, "s1"); s.State != runtime.StateReady || s.Weight != 1 || !s.Up || s.Addr+":"+fmt.Sprint(s.Port) != s3 {
		t.Fatalf("s1 after the move: %+v, want ready, UP, weight 1 at %s", s, s3)
	}
	if s := b.srvState(t, cur, "s2"); s.State != runtime.StateReady || s.Weight != 7 {
		t.Fatalf("s2 after the move: %+v", s)
	}
}

func stageDetail(res reload.Result, name string) string {
	for _, s := range res.Stages {
		if s.Name == name {
			return s.Detail
		}
	}
	return ""
}

// Acceptance: map add reaches every live process, the file, and the
// generation after a reload.
func TestSystemRuntimeMapAdd(t *testing.T) {
	b := newRuntimeBox(t)
	sp := b.showProc(t)
	r, code := b.change(t, nil, "map", "add", b.mapFile, "10.0.0.2", "b")
	if code != 0 || !r.OK || len(r.Change.Processes) != 2 {
		t.Fatalf("exit %d %+v", code, r)
	}
	for _, pid := range []int32{sp.Workers[0].PID, sp.OldWorkers[0].PID} {
		if m := b.mapIn(t, pid); !strings.Contains(m, "10.0.0.2 b") {
			t.Fatalf("process %d: %s", pid, m)
		}
	}
	if d, _ := os.ReadFile(b.mapFile); string(d) != "10.0.0.1 a\n10.0.0.2 b\n" {
		t.Fatalf("map file %q", d)
	}
	if _, code := b.reloadJSON(t, nil, "--force"); code != 0 {
		t.Fatalf("reload: exit %d", code)
	}
	if m := b.mapIn(t, b.showProc(t).Workers[0].PID); !strings.Contains(m, "10.0.0.2 b") {
		t.Fatalf("after the reload: %s", m)
	}
}

// Acceptance: a process that dies mid-apply, or refuses: exit 1, nothing
// written, the processes that had applied it reverted.
func TestSystemRuntimeFailureReverts(t *testing.T) {
	b := newRuntimeBox(t)
	cur := b.showProc(t).Workers[0].PID
	before := b.disk(t)
	r, code := b.change(t, []string{"HAGUARD_TEST_KILL_OLD_WORKER=1"}, "map", "add", b.mapFile, "10.0.0.3", "c")
	if code != 1 || r.OK || !r.Change.Reverted || r.Change.Processes[0].Outcome != runtime.Reverted || r.Change.Processes[1].Outcome != runtime.Failed {
		t.Fatalf("died mid-apply: exit %d %+v", code, r)
	}
	if !strings.Contains(r.Error, fmt.Sprintf("old worker %d", r.Change.Processes[1].PID)) {
		t.Fatalf("the error does not name the old worker: %s", r.Error)
	}
	if m := b.mapIn(t, cur); strings.Contains(m, "10.0.0.3") {
		t.Fatalf("current worker not reverted: %s", m)
	}
	if d, _ := os.ReadFile(b.mapFile); string(d) != "10.0.0.1 a\n" || b.disk(t) != before {
		t.Fatalf("something was written: %q", d)
	}

	// A refusal: the old worker does not know a map the reload added.
	b.s.HoldConnection(t, b.listen)
	newMap := filepath.Join(b.s.Dir(), "new.map")
	if err := os.WriteFile(newMap, []byte("k1 v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cand := b.candidate(t, "v2.cfg", runtimeConfig(b.listen, b.s1, b.s2, b.mapFile, fmt.Sprintf("    use_backend be_test if { src,map_str(%s) -m found }\n", newMap)))
	if _, code := b.reloadJSON(t, nil, "--candidate", cand); code != 0 {
		t.Fatalf("reload: exit %d", code)
	}
	sp := b.showProc(t)
	r, code = b.change(t, nil, "map", "set", newMap, "k1", "v2")
	if code != 1 || !r.Change.Reverted || r.Change.Processes[0].Outcome != runtime.Reverted {
		t.Fatalf("refused: exit %d %+v", code, r)
	}
	if d, _ := os.ReadFile(newMap); string(d) != "k1 v1\n" {
		t.Fatalf("written: %q", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if m, _ := b.s.MasterCLI(ctx, fmt.Sprintf("@!%d show map %s", sp.Workers[0].PID, newMap)); !strings.Contains(m, "k1 v1") {
		t.Fatalf("current worker not reverted: %s", m)
	}
}

// Acceptance: server drain --wait returns when the held connection
// closes, and times out cleanly otherwise.
func TestSystemRuntimeDrainWait(t *testing.T) {
	b := newRuntimeBox(t)
	r, code := b.change(t, nil, "server", "drain", "be_test/s1", "--wait", "--timeout", "2s")
	if code != 1 || r.Drain == nil || !r.Drain.TimedOut || r.Drain.Sessions != 1 {
		t.Fatalf("held connection: exit %d %+v %+v", code, r, r.Drain)
	}
	// On a terminal it shows the count as it falls.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tty, _ := b.s.RunTTY(ctx, 120, "", b.bin, "--config-file", b.yaml, "server", "drain", "be_test/s1", "--wait", "--timeout", "1s")
	if !strings.Contains(tty, "draining be_test/s1: 1 sessions in 2 processes") || !strings.Contains(tty, "timed out: 1 sessions left") {
		t.Fatalf("on a terminal:\n%s", tty)
	}
	p := b.s.Start(t, b.bin, "--config-file", b.yaml, "--format", "json", "server", "drain", "be_test/s1", "--wait", "--timeout", "60s")
	time.Sleep(2 * time.Second)
	if !p.Alive() {
		t.Fatalf("drain --wait returned with connections held: %s", p.Output())
	}
	b.held.Close()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("drain --wait did not return once the connection closed: %s", p.Output())
	}
	if err := p.Err(); err != nil {
		t.Fatalf("drain --wait: %v\n%s", err, p.Output())
	}
	if !strings.Contains(p.Output(), `"done": true`) {
		t.Fatalf("%s", p.Output())
	}
}
