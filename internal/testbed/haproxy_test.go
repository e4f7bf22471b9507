package testbed

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procTable is `show proc` from the master CLI, reduced to what the tests
// need: the master's PID, its reload count and the worker PIDs by section.
type procTable struct {
	master     int
	reloads    string
	workers    []int
	oldWorkers []int
}

func parseShowProc(out string) procTable {
	var pt procTable
	section := "master"
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "# workers"):
			section = "workers"
			continue
		case strings.HasPrefix(line, "# old workers"):
			section = "old"
			continue
		case strings.HasPrefix(line, "#"):
			if !strings.HasPrefix(line, "#<PID>") {
				section = "other"
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		switch {
		case section == "master" && f[1] == "master":
			pt.master = pid
			pt.reloads = f[2]
		case section == "workers":
			pt.workers = append(pt.workers, pid)
		case section == "old":
			pt.oldWorkers = append(pt.oldWorkers, pid)
		}
	}
	return pt
}

func (s *Sandbox) showProc(t *testing.T) procTable {
	t.Helper()
	out, err := s.MasterCLI(testCtx(t), "show proc")
	if err != nil {
		t.Fatal(err)
	}
	return parseShowProc(out)
}

// waitNewGeneration polls `show proc` (bounded) until a worker PID that is
// not in old is listed under "# workers".
func (s *Sandbox) waitNewGeneration(t *testing.T, old []int) procTable {
	t.Helper()
	var (
		pt      procTable
		lastErr error
	)
	for range 200 {
		// The master re-executes itself on reload: its CLI refuses or
		// resets connections for a moment.
		out, err := s.MasterCLI(testCtx(t), "show proc")
		if err != nil {
			lastErr = err
			time.Sleep(50 * time.Millisecond)
			continue
		}
		pt = parseShowProc(out)
		for _, w := range pt.workers {
			if !containsInt(old, w) {
				return pt
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no new worker generation after reload; show proc: %+v (old workers %v, last error %v)", pt, old, lastErr)
	return pt
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestHAProxyServiceReloadOverDBusFromHost(t *testing.T) {
	s := Boot(t)
	ctx := testCtx(t)
	backend := TCPBackend(t)
	front := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	s.StartHAProxy(t, TCPProxyConfig(front, backend))

	if ok, fail := ConnectLoop(ctx, front, 10, Greeting); fail != 0 {
		t.Fatalf("through haproxy.service before reload: ok=%d fail=%d", ok, fail)
	}
	before := s.showProc(t)
	if before.master == 0 || len(before.workers) == 0 {
		t.Fatalf("show proc before reload: %+v", before)
	}

	conn, err := s.DialSystemd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// MainPID and ControlGroup are the box's view: the master's PID inside
	// the box and a cgroup path without the host's prefix.
	props, err := conn.GetUnitTypePropertiesContext(ctx, "haproxy.service", "Service")
	if err != nil {
		t.Fatal(err)
	}
	if mainPID := props["MainPID"].(uint32); int(mainPID) != before.master {
		t.Errorf("D-Bus MainPID %d, master CLI master %d", mainPID, before.master)
	}
	if cg := props["ControlGroup"].(string); cg != "/system.slice/haproxy.service" {
		t.Errorf("ControlGroup %q, want /system.slice/haproxy.service", cg)
	}
	ch := make(chan string, 1)
	if _, err := conn.ReloadUnitContext(ctx, "haproxy.service", "replace", ch); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			t.Fatalf("reload job result %q", res)
		}
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	after := s.waitNewGeneration(t, before.workers)
	if after.master != before.master {
		t.Errorf("master changed across a reload: %d -> %d", before.master, after.master)
	}
	t.Logf("show proc: before %+v, after %+v", before, after)
	if ok, fail := ConnectLoop(ctx, front, 10, Greeting); fail != 0 {
		t.Errorf("through haproxy.service after reload: ok=%d fail=%d", ok, fail)
	}
}

func TestDrainingWorkerHoldsConnectionAcrossReload(t *testing.T) {
	s := Boot(t)
	ctx := testCtx(t)
	backend := TCPBackend(t)
	front := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	s.StartHAProxy(t, TCPProxyConfig(front, backend))
	before := s.showProc(t)
	held := s.HoldConnection(t, front)

	if _, err := s.Systemctl(ctx, "reload", "haproxy.service"); err != nil {
		t.Fatal(err)
	}
	after := s.waitNewGeneration(t, before.workers)
	for _, w := range before.workers {
		if !containsInt(after.oldWorkers, w) {
			t.Fatalf("worker %d holding a connection is not listed under old workers: %+v", w, after)
		}
		host, err := s.HostPIDOf(w)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := ListeningSockets(host); err != nil || n != 0 {
			t.Errorf("draining worker %d (host %d) holds %d listening sockets (%v), want 0", w, host, n, err)
		}
	}
	// The held connection still works through the draining worker.
	if _, err := held.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	_ = held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := held.Read(buf); err != nil || string(buf) != "ping\n" {
		t.Errorf("echo through the draining worker: %q %v", buf, err)
	}
}

func TestGhostSplitsConnections(t *testing.T) {
	s := Boot(t)
	ctx := testCtx(t)
	backend := TCPBackend(t)
	front := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	s.StartHAProxy(t, TCPProxyConfig(front, backend))
	if ok, fail := ConnectLoop(ctx, front, 10, Greeting); fail != 0 {
		t.Fatalf("before the ghost: ok=%d fail=%d", ok, fail)
	}

	ghost := s.StartGhost(t, TCPProxyConfig(front, DeadAddr(t)))
	// The ghost is outside the unit's cgroup, seen from inside the box.
	cg, _, err := s.Run(ctx, "cat", fmt.Sprintf("/proc/%d/cgroup", ghost.BoxPID))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cg, "haproxy.service") {
		t.Errorf("ghost is in the unit's cgroup: %s", cg)
	}
	ok, fail := ConnectLoop(ctx, front, 40, Greeting)
	t.Logf("with a ghost on %s: OK=%d FAIL=%d (ghost box pid %d, host pid %d, cgroup %s)",
		front, ok, fail, ghost.BoxPID, ghost.HostPID, strings.TrimSpace(cg))
	if fail == 0 || ok == 0 {
		t.Errorf("a ghost sharing the port should split connections: OK=%d FAIL=%d", ok, fail)
	}

	ghost.Kill()
	if ok, fail := ConnectLoop(ctx, front, 10, Greeting); fail != 0 {
		t.Errorf("after killing the ghost: ok=%d fail=%d", ok, fail)
	}
}

func TestGhostDaemonIsOrphanedToBoxInit(t *testing.T) {
	s := Boot(t)
	ctx := testCtx(t)
	front := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	s.StartHAProxy(t, TCPProxyConfig(front, TCPBackend(t)))
	ghost := s.StartGhostDaemon(t, TCPProxyConfig(front, DeadAddr(t)))
	status, _, err := s.Run(ctx, "cat", fmt.Sprintf("/proc/%d/status", ghost.BoxPID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, "\nPPid:\t1\n") {
		t.Errorf("daemonized ghost's parent inside the box is not PID 1:\n%s", status)
	}
	if ok, fail := ConnectLoop(ctx, front, 40, Greeting); ok == 0 || fail == 0 {
		t.Errorf("a daemonized ghost should split connections: OK=%d FAIL=%d", ok, fail)
	}
	ghost.Kill()
	select {
	case <-ghost.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("ghost daemon still alive after Kill")
	}
}
