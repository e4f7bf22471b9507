package procs_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/internal/testbed/mastertest"
	"github.com/haguard/haguard/systemd"
)

// handUnit stands in for systemd in tier 2 (no unit): it reports the
// hand-started master as MainPID and no cgroup, so "managed" means
// "below that master".
type handUnit struct{ pid int }

func (h handUnit) State(_ context.Context, name string) (systemd.Unit, error) {
	return systemd.Unit{Name: name, MainPID: int32(h.pid), ActiveState: "active"}, nil
}

// scanner sweeps only this test's processes: the master's tree and the
// given extra PIDs. Other haproxy processes may run on this host (other
// tests' sandboxes); a test must never classify, let alone kill, them.
func scanner(m *mastertest.Master, settle time.Duration, extra ...int) *procs.Scanner {
	return &procs.Scanner{
		Unit: "haproxy.service", Names: []string{"haproxy"}, Settle: settle,
		Systemd: handUnit{m.PID}, Master: m.Client,
		List: func(ctx context.Context, names []string) ([]procs.Proc, error) {
			all, err := procs.ListProcesses(ctx, names)
			if err != nil {
				return nil, err
			}
			var out []procs.Proc
			for _, p := range all {
				if int(p.PID) == m.PID || int(p.PPID) == m.PID || slices.Contains(extra, int(p.PID)) {
					out = append(out, p)
				}
			}
			return out, nil
		},
	}
}

func sweep(t *testing.T, s *procs.Scanner) procs.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mine keeps the processes of this test (other haproxy may run on the
// host): the master's tree plus the listed extra PIDs.
func mine(r procs.Report, master int, extra ...int) map[int32]procs.Process {
	out := map[int32]procs.Process{}
	for _, p := range r.Processes {
		if int(p.PID) == master || int(p.PPID) == master {
			out[p.PID] = p
		}
		for _, e := range extra {
			if int(p.PID) == e {
				out[p.PID] = p
			}
		}
	}
	return out
}

func classes(ps map[int32]procs.Process) map[procs.Class]int {
	out := map[procs.Class]int{}
	for _, p := range ps {
		out[p.Class]++
	}
	return out
}

func listenAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t)))
}

// TestGhostTier2: a ghost started by hand with an old config on the same
// port steals connections; the sweep names it, Kill removes it, and the
// connect loop is clean afterwards.
func TestGhostTier2(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	backend := testbed.TCPBackend(t)
	listen := listenAddr(t)
	m := mastertest.Start(t, testbed.TCPProxyConfig(listen, backend))
	ghost := mastertest.StartGhost(t, testbed.TCPProxyConfig(listen, testbed.DeadAddr(t)))
	s := scanner(m, 5*time.Second, ghost.PID)

	r := sweep(t, s)
	ps := mine(r, m.PID, ghost.PID)
	if len(r.Processes) != len(ps) {
		t.Fatalf("the sweep saw processes that are not this test's: %+v", r.Processes)
	}
	if got := classes(ps); got[procs.Current] != 2 || got[procs.Ghost] != 1 || len(ps) != 3 {
		t.Fatalf("classes %v: %+v", got, ps)
	}
	g := ps[int32(ghost.PID)]
	if g.Class != procs.Ghost || !strings.Contains(g.Reason, "LISTENs on "+listen+", which the managed haproxy also serves") ||
		len(g.Listen) != 1 || g.Listen[0] != listen || g.Generation != 0 {
		t.Fatalf("ghost: %+v", g)
	}
	if r.MasterPID != int32(m.PID) || r.Clean() {
		t.Fatalf("report: master %d clean %v", r.MasterPID, r.Clean())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ok, fail := testbed.ConnectLoop(ctx, listen, 40, testbed.Greeting)
	if fail == 0 {
		t.Fatalf("with a ghost on the port the connect loop should fail sometimes: ok=%d fail=%d", ok, fail)
	}

	// Without a unit there is no cgroup anchor: the kill must refuse and
	// send nothing. The anchored kill (a real unit) is tested end to end
	// in tier 3 (cmd/haguard ghosts_system_test.go); here the ghost's
	// refusal is lifted by hand to test the signals on a real haproxy.
	res := procs.NewKiller(5*time.Second, nil).KillGhosts(ctx, r)
	if len(res) != 1 || res[0].Outcome != procs.Failed || !strings.Contains(res[0].Error, "cgroup is unknown") {
		t.Fatalf("kill without the cgroup anchor: %+v", res)
	}
	if err := syscall.Kill(ghost.PID, 0); err != nil {
		t.Fatalf("the ghost was harmed by a refused kill: %v", err)
	}
	for i := range r.Processes {
		if r.Processes[i].PID == int32(ghost.PID) {
			r.Processes[i].NoKill = ""
		}
	}
	res = procs.NewKiller(5*time.Second, nil).KillGhosts(ctx, r)
	var ghostsKilled int
	for _, k := range res {
		if k.PID == int32(ghost.PID) && k.Outcome == procs.Terminated {
			ghostsKilled++
		}
	}
	if ghostsKilled != 1 || len(res) != 1 {
		t.Fatalf("kill results %+v", res)
	}
	if err := ghost.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	r = sweep(t, s)
	if got := classes(mine(r, m.PID, ghost.PID)); got[procs.Ghost] != 0 || got[procs.Current] != 2 {
		t.Fatalf("after kill: %v", got)
	}
	if ok, fail := testbed.ConnectLoop(ctx, listen, 40, testbed.Greeting); fail != 0 {
		t.Fatalf("after the kill every connection should work: ok=%d fail=%d", ok, fail)
	}
}

// TestDrainingAndDivergentTier2: an old worker holding a connection is
// draining (and Kill leaves it alone); after a reload that fails the
// serving worker is divergent.
func TestDrainingAndDivergentTier2(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	backend := testbed.TCPBackend(t)
	listen := listenAddr(t)
	good := testbed.TCPProxyConfig(listen, backend)
	m := mastertest.Start(t, good)
	s := scanner(m, 5*time.Second)

	conn, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, len(testbed.Greeting))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(buf); err != nil {
		t.Fatal(err)
	}
	sp := m.Reload(t)
	if len(sp.OldWorkers) != 1 {
		t.Fatalf("no old worker after reload: %+v", sp)
	}
	old := sp.OldWorkers[0].PID

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var r procs.Report
	for range 100 { // the old worker closes its listeners right after the new one is ready
		r = sweep(t, s)
		if p, ok := mine(r, m.PID)[old]; ok && len(p.Listen) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ps := mine(r, m.PID)
	if p := ps[old]; p.Class != procs.Draining || p.Generation != 0 || !strings.Contains(p.Reason, "finishing its connections") {
		t.Fatalf("old worker: %+v", p)
	}
	if got := classes(ps); got[procs.Current] != 2 || got[procs.Draining] != 1 || len(ps) != 3 {
		t.Fatalf("classes %v", got)
	}
	if res := procs.NewKiller(time.Second, nil).KillGhosts(ctx, r); len(res) != 0 {
		t.Fatalf("KillGhosts acted on a managed process: %+v", res)
	}
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(buf[:5]); err != nil || string(buf[:5]) != "ping\n" {
		t.Fatalf("the held connection through the draining worker broke: %q %v", buf[:5], err)
	}

	// A config that passes `haproxy -c` but cannot bind: the reload fails.
	m.WriteConfig(t, good+"\nlisten broken\n\tbind 10.254.254.254:"+strconv.Itoa(testbed.FreePort(t))+"\n\tserver s1 "+backend+"\n")
	sp = m.Reload(t)
	if !sp.LastReloadFailed() {
		t.Fatalf("reload did not fail: %+v", sp)
	}
	r = sweep(t, s)
	ps = mine(r, m.PID)
	cur := mastertest.Serving(t, sp).PID
	if p := ps[cur]; p.Class != procs.Divergent || !strings.Contains(p.Reason, "the last reload failed") {
		t.Fatalf("worker after a failed reload: %+v", p)
	}
	if r.Clean() {
		t.Fatal("a failed reload must not look clean")
	}
}

// TestDeletedExecutableTier2: a master-worker haproxy running from a copy
// of the binary that is then deleted is divergent, every process of it.
func TestDeletedExecutableTier2(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	bin := mastertest.CopyBinary(t, t.TempDir())
	listen := listenAddr(t)
	m := mastertest.StartBinary(t, bin, testbed.TCPProxyConfig(listen, testbed.TCPBackend(t)))
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	ps := mine(sweep(t, scanner(m, 5*time.Second)), m.PID)
	if len(ps) != 2 {
		t.Fatalf("want master and worker: %+v", ps)
	}
	for _, p := range ps {
		if p.Class != procs.Divergent || !strings.HasSuffix(p.Exe, " (deleted)") || !strings.Contains(p.Reason, filepath.Base(bin)) {
			t.Fatalf("%+v", p)
		}
	}
}

// TestNoFalsePositivesTier2: a clean master-worker haproxy, before and
// after ten reloads, has no ghost and nothing divergent.
func TestNoFalsePositivesTier2(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	m := mastertest.Start(t, testbed.TCPProxyConfig(listenAddr(t), testbed.TCPBackend(t)))
	s := scanner(m, 5*time.Second)
	check := func(when string) {
		ps := mine(sweep(t, s), m.PID)
		got := classes(ps)
		if got[procs.Ghost] != 0 || got[procs.Divergent] != 0 || got[procs.Current] != 2 {
			t.Fatalf("%s: %v %+v", when, got, ps)
		}
	}
	check("before reloads")
	for i := range 10 {
		sp := m.Reload(t)
		if sp.Reloads != i+1 || sp.LastReloadFailed() {
			t.Fatalf("reload %d: %+v", i+1, sp)
		}
	}
	check("after ten reloads")
}

var _ procs.MasterSource = (*master.Client)(nil)

// TestStuckOldWorkerTier2: an incomplete reload. The worker is frozen
// (SIGSTOP) before the reload, so it never gets to close its listener:
// after the reload it is an old worker still LISTENing next to the new
// one. Within the settle time it is draining; after it, divergent.
func TestStuckOldWorkerTier2(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	listen := listenAddr(t)
	m := mastertest.Start(t, testbed.TCPProxyConfig(listen, testbed.TCPBackend(t)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sp, err := m.ShowProc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stuck := int(sp.Workers[0].PID)
	if err := syscall.Kill(stuck, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(stuck, syscall.SIGCONT) }()
	m.Reload(t)

	p := mine(sweep(t, scanner(m, time.Hour)), m.PID)[int32(stuck)]
	if p.Class != procs.Draining || len(p.Listen) != 1 || !strings.Contains(p.Reason, "releasing its listeners") {
		t.Fatalf("within the settle time: %+v", p)
	}
	r := sweep(t, scanner(m, time.Millisecond))
	p = mine(r, m.PID)[int32(stuck)]
	if p.Class != procs.Divergent || p.Generation != 0 || len(p.Listen) != 1 || p.Listen[0] != listen ||
		!strings.Contains(p.Reason, "still LISTENs on "+listen) {
		t.Fatalf("after the settle time: %+v", p)
	}
	if r.Clean() || r.Counts.Current != 2 {
		t.Fatalf("counts %+v", r.Counts)
	}
}
