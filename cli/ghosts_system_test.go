package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/internal/testbed"
)

// Tier 3: the haguard binary runs INSIDE the sandbox (same PID namespace
// as the box's systemd, default system bus, default master socket), which
// is exactly the production situation. Its --kill can only reach the
// box's processes.

type ghostBox struct {
	s       *testbed.Sandbox
	bin     string
	listen  string
	backend string
	good    string
	kills   []ghostKill // of the last ghosts run
}

func newGhostBox(t *testing.T) *ghostBox {
	t.Helper()
	testbed.Require(t, testbed.TierSystem)
	b := &ghostBox{s: testbed.Boot(t), bin: testbed.BuildHaguard(t)}
	b.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.backend = testbed.TCPBackend(t)
	b.good = testbed.TCPProxyConfig(b.listen, b.backend)
	b.s.StartHAProxy(t, b.good)
	return b
}

// ghosts runs `haguard ghosts --format json ARGS` in the box and returns
// the report and the exit code.
func (b *ghostBox) ghosts(t *testing.T, args ...string) (procs.Report, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append([]string{b.bin, "ghosts", "--format", "json"}, args...)
	out, errOut, err := b.s.Run(ctx, argv...)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run haguard ghosts: %v", err)
		}
		code = ee.ExitCode()
	}
	var d ghostsDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("haguard ghosts (exit %d) printed no JSON report: %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errOut)
	}
	t.Logf("haguard ghosts %s: exit %d, counts %+v, kills %+v", strings.Join(args, " "), code, d.Counts, d.Kills)
	b.kills = d.Kills
	return d.Report, code
}

func (b *ghostBox) showProc(t *testing.T) *master.ShowProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last error
	for range 300 {
		out, err := b.s.MasterCLI(ctx, "show proc")
		if err == nil {
			sp, perr := master.ParseShowProc(out)
			if perr == nil {
				return sp
			}
			err = perr
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("show proc: %v", last)
	return nil
}

// reload runs `systemctl reload haproxy` and waits until the master has
// counted it and either a worker of the new generation runs or the reload
// counts as failed.
func (b *ghostBox) reload(t *testing.T) *master.ShowProc {
	t.Helper()
	before := b.showProc(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := b.s.Systemctl(ctx, "reload", "haproxy.service"); err != nil {
		t.Fatalf("systemctl reload: %v", err)
	}
	for range 300 {
		// Until the unit leaves "reloading" the outcome is not known:
		// 3.1+ lists the new worker while it still loads.
		if st, _ := b.s.Systemctl(ctx, "is-active", "haproxy.service"); strings.TrimSpace(st) == "reloading" {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		sp := b.showProc(t)
		if sp.Reloads > before.Reloads {
			if sp.FailedReloads > 0 {
				return sp
			}
			for _, w := range sp.Workers {
				if w.Generation == sp.Reloads {
					return sp
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("reload not seen in show proc (before: %+v)", before)
	return nil
}

func byPID(r procs.Report) map[int32]procs.Process {
	m := map[int32]procs.Process{}
	for _, p := range r.Processes {
		m[p.PID] = p
	}
	return m
}

// Ghost: a ghost started by hand with an old config on the same port is
// classified ghost; a connect loop fails before `ghosts --kill` and never
// after it.
func TestGhostsSystemGhost(t *testing.T) {
	b := newGhostBox(t)
	ghost := b.s.StartGhost(t, testbed.TCPProxyConfig(b.listen, testbed.DeadAddr(t)))

	r, code := b.ghosts(t)
	if code != exitNegative || r.Counts.Ghost != 1 || r.Counts.Divergent != 0 || r.Counts.Current != 2 {
		t.Fatalf("exit %d, counts %+v: %+v", code, r.Counts, r.Processes)
	}
	g, ok := byPID(r)[int32(ghost.BoxPID)]
	if !ok || g.Class != procs.Ghost || g.Cgroup == "/system.slice/haproxy.service" || len(g.Listen) != 1 || g.Listen[0] != b.listen ||
		!strings.Contains(g.Reason, "not in haproxy.service's cgroup /system.slice/haproxy.service") ||
		!strings.Contains(g.Reason, "which the managed haproxy also serves") {
		t.Fatalf("ghost (box pid %d): %+v", ghost.BoxPID, g)
	}
	sp := b.showProc(t)
	if r.MasterPID != sp.Master.PID {
		t.Fatalf("master_pid %d, show proc says %d", r.MasterPID, sp.Master.PID)
	}
	for _, p := range r.Processes {
		if p.Class == procs.Current && p.Cgroup != "/system.slice/haproxy.service" {
			t.Fatalf("current process outside the unit: %+v", p)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ok1, fail1 := testbed.ConnectLoop(ctx, b.listen, 40, testbed.Greeting)
	t.Logf("connect loop with the ghost: ok=%d fail=%d", ok1, fail1)
	if fail1 == 0 {
		t.Fatalf("the ghost took no connection in 40 attempts (ok=%d)", ok1)
	}

	r, code = b.ghosts(t, "--kill", "--grace", "5s")
	if code != exitOK || r.Counts.Ghost != 1 {
		t.Fatalf("--kill: exit %d, counts %+v", code, r.Counts)
	}
	if len(b.kills) != 1 || b.kills[0].PID != int32(ghost.BoxPID) ||
		(b.kills[0].Outcome != procs.Terminated && b.kills[0].Outcome != procs.Killed) || b.kills[0].Error != "" {
		t.Fatalf("--kill: kills %+v, want the ghost (box pid %d) terminated or killed", b.kills, ghost.BoxPID)
	}
	select {
	case <-ghost.Done():
	case <-ctx.Done():
		t.Fatal("the ghost still runs after --kill")
	}
	ok2, fail2 := testbed.ConnectLoop(ctx, b.listen, 40, testbed.Greeting)
	t.Logf("connect loop after --kill: ok=%d fail=%d", ok2, fail2)
	if fail2 != 0 {
		t.Fatalf("connections still fail after the kill: ok=%d fail=%d", ok2, fail2)
	}
	r, code = b.ghosts(t)
	if code != exitOK || !r.Clean() || r.Counts.Current != 2 {
		t.Fatalf("after the kill: exit %d, counts %+v", code, r.Counts)
	}

	// The human report of a kill says what was done and closes on the
	// state after it (it used to close on "1 ghost ...: needs attention").
	ghost2 := b.s.StartGhost(t, testbed.TCPProxyConfig(b.listen, testbed.DeadAddr(t)))
	out, errOut, err := b.s.Run(ctx, b.bin, "ghosts", "--kill", "--grace", "5s")
	if err != nil {
		t.Fatalf("human ghosts --kill: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	for _, want := range []string{
		fmt.Sprintf("\nkilled:\n  %d ", ghost2.BoxPID),
		"found 2 current, 0 draining, 1 ghost, 0 divergent\n",
		"after --kill: 1 of 1 ghost removed, 0 ghost and 0 divergent remain: clean\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("human ghosts --kill lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "needs attention") {
		t.Errorf("human ghosts --kill still says needs attention after a clean kill:\n%s", out)
	}
}

// Draining: an old worker holding a connection after a reload is
// draining, and --kill leaves it (and the connection) alone.
func TestGhostsSystemDraining(t *testing.T) {
	b := newGhostBox(t)
	conn := b.s.HoldConnection(t, b.listen)
	sp := b.reload(t)
	if len(sp.OldWorkers) != 1 {
		t.Fatalf("no old worker after the reload: %+v", sp)
	}
	old := sp.OldWorkers[0]

	var r procs.Report
	var code int
	for range 50 { // the old worker closes its listeners right after the handover
		r, code = b.ghosts(t)
		if p := byPID(r)[old.PID]; p.Class == procs.Draining && len(p.Listen) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	p := byPID(r)[old.PID]
	if code != exitOK || p.Class != procs.Draining || p.Generation != sp.Reloads-1 || p.Cgroup != "/system.slice/haproxy.service" ||
		!strings.Contains(p.Reason, "finishing its connections") {
		t.Fatalf("exit %d; old worker %+v; counts %+v", code, p, r.Counts)
	}
	if r.Counts.Current != 2 || r.Counts.Draining != 1 || !r.Clean() {
		t.Fatalf("counts %+v", r.Counts)
	}

	r, code = b.ghosts(t, "--kill", "--grace", "2s")
	if code != exitOK || byPID(r)[old.PID].Class != procs.Draining {
		t.Fatalf("--kill: exit %d, %+v", code, r.Processes)
	}
	if b.kills == nil || len(b.kills) != 0 {
		t.Fatalf("--kill with no ghost: kills %+v, want []", b.kills)
	}
	if r2, _ := b.ghosts(t); byPID(r2)[old.PID].Class != procs.Draining {
		t.Fatalf("the draining worker is gone after --kill: %+v", r2.Processes)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("still there\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("still there\n"))
	if _, err := conn.Read(buf); err != nil || string(buf) != "still there\n" {
		t.Fatalf("the held connection broke: %q %v", buf, err)
	}
}

// Divergent (a): a reload that passes `haproxy -c` but cannot bind fails
// inside haproxy while systemd reports success; the worker left serving
// the previous config is divergent.
func TestGhostsSystemDivergentFailedReload(t *testing.T) {
	b := newGhostBox(t)
	r, code := b.ghosts(t)
	if code != exitOK {
		t.Fatalf("clean box: exit %d, %+v", code, r.Processes)
	}
	serving := b.showProc(t).Workers[0].PID
	b.s.WriteHAProxyConfig(t, b.good+fmt.Sprintf("\nlisten unbindable\n\tbind 10.254.254.254:%d\n\tserver s1 %s\n", testbed.FreePort(t), b.backend))
	sp := b.reload(t)
	if !sp.LastReloadFailed() {
		t.Fatalf("the reload did not fail: %+v", sp)
	}
	r, code = b.ghosts(t)
	p := byPID(r)[serving]
	if code != exitNegative || p.Class != procs.Divergent || !strings.Contains(p.Reason, "the last reload failed") || len(p.Listen) == 0 {
		t.Fatalf("exit %d; serving worker %+v; all %+v", code, p, r.Processes)
	}
	if r.Counts.Ghost != 0 {
		t.Fatalf("a failed reload is not a ghost: %+v", r.Counts)
	}
	// --kill never touches divergent processes.
	if r, code = b.ghosts(t, "--kill"); code != exitNegative || byPID(r)[serving].Class != procs.Divergent {
		t.Fatalf("--kill on divergent: exit %d %+v", code, r.Processes)
	}
	if _, ok := byPID(func() procs.Report { r, _ := b.ghosts(t); return r }())[serving]; !ok {
		t.Fatal("--kill removed a divergent worker")
	}
}

// Divergent (b): the unit runs a copy of the haproxy binary (a drop-in),
// and the copy is deleted, as a package upgrade without a restart leaves
// it: master and worker are divergent.
func TestGhostsSystemDivergentDeletedExe(t *testing.T) {
	b := newGhostBox(t)
	bindir := filepath.Join(b.s.Dir(), "bin")
	if err := os.MkdirAll(bindir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(testbed.HAProxyBin())
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(bindir, "haproxy")
	if err := os.WriteFile(cp, src, 0o755); err != nil {
		t.Fatal(err)
	}
	dropIn := b.s.HostPath("/run/systemd/system/haproxy.service.d/zz-copy.conf")
	if err := os.WriteFile(dropIn, []byte(fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%[1]s -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS
ExecReload=
ExecReload=%[1]s -Ws -f $CONFIG -c -q $EXTRAOPTS
ExecReload=/bin/kill -USR2 $MAINPID
`, cp)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{{"daemon-reload"}, {"restart", "haproxy.service"}} {
		if _, err := b.s.Systemctl(ctx, args...); err != nil {
			t.Fatalf("systemctl %v: %v", args, err)
		}
	}
	sp := b.showProc(t)
	for len(sp.Workers) == 0 {
		time.Sleep(50 * time.Millisecond)
		sp = b.showProc(t)
	}
	r, code := b.ghosts(t)
	if code != exitOK || r.Counts.Current != 2 {
		t.Fatalf("running from the copy: exit %d %+v", code, r.Processes)
	}
	if err := os.Remove(cp); err != nil {
		t.Fatal(err)
	}
	r, code = b.ghosts(t)
	if code != exitNegative || r.Counts.Divergent != 2 || r.Counts.Ghost != 0 {
		t.Fatalf("after deleting the binary: exit %d, counts %+v, %+v", code, r.Counts, r.Processes)
	}
	for _, p := range r.Processes {
		if p.Exe != cp+" (deleted)" || !strings.Contains(p.Reason, "was deleted or replaced") {
			t.Fatalf("%+v", p)
		}
	}
}

// No false positives: a clean box, before and after ten reloads, has no
// ghost and nothing divergent.
func TestGhostsSystemNoFalsePositives(t *testing.T) {
	b := newGhostBox(t)
	r, code := b.ghosts(t)
	if code != exitOK || !r.Clean() || r.Counts.Current != 2 || len(r.Processes) != 2 {
		t.Fatalf("before reloads: exit %d, %+v", code, r.Processes)
	}
	for i := range 10 {
		if sp := b.reload(t); sp.LastReloadFailed() || sp.Reloads != i+1 {
			t.Fatalf("reload %d: %+v", i+1, sp)
		}
	}
	r, code = b.ghosts(t)
	if code != exitOK || !r.Clean() || r.Counts.Current != 2 {
		t.Fatalf("after ten reloads: exit %d, counts %+v, %+v", code, r.Counts, r.Processes)
	}
	sp := b.showProc(t)
	for _, p := range r.Processes {
		if p.Class == procs.Current && p.PID != sp.Master.PID && p.Generation != 10 {
			t.Fatalf("current worker of generation %d, want 10: %+v", p.Generation, p)
		}
	}
}

// Divergent (c): an incomplete reload. The worker is frozen (SIGSTOP)
// before `systemctl reload`, so it never closes its listener: after the
// reload the old worker still LISTENs next to the new one and, past the
// settle time, is divergent; --kill leaves it to a human.
func TestGhostsSystemDivergentStuckOldWorker(t *testing.T) {
	b := newGhostBox(t)
	stuck := b.showProc(t).Workers[0].PID
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pid := fmt.Sprint(stuck)
	if _, _, err := b.s.Run(ctx, "kill", "-STOP", pid); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _, _ = b.s.Run(context.Background(), "kill", "-CONT", pid) }()
	b.reload(t)

	r, code := b.ghosts(t, "--settle", "1ms", "--kill")
	p := byPID(r)[stuck]
	if code != exitNegative || p.Class != procs.Divergent || len(p.Listen) != 1 || p.Listen[0] != b.listen ||
		!strings.Contains(p.Reason, "still LISTENs on "+b.listen) {
		t.Fatalf("exit %d; stuck worker %+v; all %+v", code, p, r.Processes)
	}
	if r.Counts.Current != 2 || r.Counts.Ghost != 0 || r.Counts.Divergent != 1 {
		t.Fatalf("counts %+v", r.Counts)
	}
	if r, _ = b.ghosts(t, "--settle", "1h"); byPID(r)[stuck].Class != procs.Draining {
		t.Fatalf("within the settle time it should be draining: %+v", byPID(r)[stuck])
	}
}
