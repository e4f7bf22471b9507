package runtime_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/runtime"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/internal/testbed/mastertest"
)

func TestMain(m *testing.M) { os.Exit(testbed.RunMain(m)) }

// twoGenerations starts a master-worker haproxy proxying to a greeting
// backend, holds a connection on its worker and reloads (into cfg2 when
// set): one current worker and one old worker holding a session on
// be/s1.
func twoGenerations(t *testing.T, mapBody string, extra2 string) (*mastertest.Master, string, net.Conn) {
	t.Helper()
	testbed.Require(t, testbed.TierBinary)
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t)))
	backend := testbed.TCPBackend(t)
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "hosts.map")
	if err := os.WriteFile(mapFile, []byte(mapBody), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := func(extra string) string {
		return fmt.Sprintf(`defaults
	mode tcp
	timeout connect 1s
	timeout client 60s
	timeout server 60s

frontend fe
	bind %s
	tcp-request content set-var(sess.c) src,map_ip(%s,none)
	default_backend be
%s
backend be
	server s1 %s weight 10
	server s2 127.0.0.1:9 weight 10 disabled
`, listen, mapFile, extra, backend)
	}
	m := mastertest.Start(t, cfg(""))
	c := hold(t, listen)
	m.WriteConfig(t, cfg(extra2))
	sp := m.Reload(t)
	if len(sp.OldWorkers) != 1 || len(sp.Workers) != 1 {
		t.Fatalf("want one current and one old worker: %+v", sp)
	}
	return m, mapFile, c
}

func hold(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || l != testbed.Greeting {
		t.Fatalf("greeting %q %v", l, err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Tier 2: drain reaches the current worker; the old worker (2.6) refuses
// on its stopping proxy, and the report names it and its held session.
func TestServerChangeEveryProcess(t *testing.T) {
	m, _, _ := twoGenerations(t, "10.0.0.1 a\n", "")
	ctx := ctxT(t)
	rt := runtime.New(m.Client)
	w := 5
	rep, err := rt.SetServer(ctx, runtime.ServerChange{Backend: "be", Server: "s1", State: runtime.StateDrain, Weight: &w})
	if err != nil {
		t.Fatalf("%v\n%+v", err, rep)
	}
	if len(rep.Processes) != 2 {
		t.Fatalf("%+v", rep)
	}
	cur, old := rep.Processes[0], rep.Processes[1]
	if !cur.Current || cur.Outcome != runtime.Applied || cur.After == nil || cur.After.State != runtime.StateDrain || cur.After.Weight != 5 {
		t.Errorf("current: %+v after %+v", cur, cur.After)
	}
	switch old.Outcome {
	case runtime.Refused:
		if old.Answer != "Proxy is disabled." || old.Sessions != 1 {
			t.Errorf("old worker refused: %+v, want Proxy is disabled. and its 1 session", old)
		}
	case runtime.Applied:
		if old.After.State != runtime.StateDrain {
			t.Errorf("old: %+v", old.After)
		}
	default:
		t.Errorf("old worker: %+v", old)
	}
	s, err := rt.Server(ctx, cur.PID, "be", "s1")
	if err != nil || s.State != runtime.StateDrain || s.Weight != 5 {
		t.Fatalf("current read again: %+v %v", s, err)
	}
	// Unknown server: not found, nothing applied.
	if _, err := rt.SetServer(ctx, runtime.ServerChange{Backend: "be", Server: "nope", State: runtime.StateMaint}); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("unknown server: %v", err)
	}
}

// Tier 2: a map entry reaches every process, old workers included.
func TestMapChangeEveryProcess(t *testing.T) {
	m, mapFile, _ := twoGenerations(t, "10.0.0.1 a\n", "")
	ctx := ctxT(t)
	rt := runtime.New(m.Client)
	for _, c := range []runtime.MapChange{
		{Op: runtime.MapAdd, Map: mapFile, Key: "10.0.0.2", Value: "b"},
		{Op: runtime.MapSet, Map: mapFile, Key: "10.0.0.1", Value: "z"},
		{Op: runtime.MapDel, Map: mapFile, Key: "10.0.0.2"},
	} {
		rep, err := rt.SetMap(ctx, c)
		if err != nil || !rep.OK || len(rep.Processes) != 2 {
			t.Fatalf("%s: %v %+v", c, err, rep)
		}
		for _, p := range rep.Processes {
			if p.Outcome != runtime.Applied {
				t.Errorf("%s: %+v", c, p)
			}
			es, err := rt.Map(ctx, p.PID, mapFile)
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprint(es)
			if c.Op == runtime.MapDel && strings.Contains(got, "10.0.0.2") || c.Op != runtime.MapDel && !strings.Contains(got, c.Key+" "+c.Value) {
				t.Errorf("%s: process %d holds %s", c, p.PID, got)
			}
		}
	}
	if _, err := rt.SetMap(ctx, runtime.MapChange{Op: runtime.MapAdd, Map: mapFile, Key: "10.0.0.1", Value: "dup"}); !errors.Is(err, runtime.ErrExists) {
		t.Fatalf("add of an existing key: %v", err)
	}
}

// Tier 2: an old worker that does not know the map (the reload added it)
// refuses: the current worker is put back, the error names the old one.
func TestMapChangeRefusedIsReverted(t *testing.T) {
	dir := t.TempDir()
	newMap := filepath.Join(dir, "new.map")
	if err := os.WriteFile(newMap, []byte("k1 v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, _ := twoGenerations(t, "10.0.0.1 a\n", fmt.Sprintf("\tuse_backend be if { src,map_str(%s) -m found }\n", newMap))
	ctx := ctxT(t)
	rt := runtime.New(m.Client)
	rep, err := rt.SetMap(ctx, runtime.MapChange{Op: runtime.MapSet, Map: newMap, Key: "k1", Value: "v2"})
	var fe *runtime.FailedError
	if !errors.As(err, &fe) || fe.Current || !rep.Reverted {
		t.Fatalf("want the old worker's failure: %v %+v", err, rep)
	}
	cur := rep.Processes[0]
	if cur.Outcome != runtime.Reverted {
		t.Fatalf("current: %+v", cur)
	}
	es, err := rt.Map(ctx, cur.PID, newMap)
	if err != nil || len(es) != 1 || es[0].Value != "v1" {
		t.Fatalf("current worker's map after the revert: %+v %v", es, err)
	}
}

// Tier 2: an old worker that dies mid-apply fails the change; the
// current worker is put back.
func TestMapChangeProcessDiesIsReverted(t *testing.T) {
	m, mapFile, _ := twoGenerations(t, "10.0.0.1 a\n", "")
	ctx := ctxT(t)
	rt := runtime.New(m.Client)
	rt.BeforeProcess = func(p runtime.Process) {
		if !p.Current {
			_ = syscall.Kill(int(p.PID), syscall.SIGKILL)
			time.Sleep(200 * time.Millisecond)
		}
	}
	rep, err := rt.SetMap(ctx, runtime.MapChange{Op: runtime.MapAdd, Map: mapFile, Key: "10.0.0.9", Value: "x"})
	var fe *runtime.FailedError
	if !errors.As(err, &fe) || fe.Current || !rep.Reverted || rep.Processes[0].Outcome != runtime.Reverted {
		t.Fatalf("want the dead old worker's failure and a revert: %v %+v", err, rep)
	}
	es, err := rt.Map(ctx, rep.Processes[0].PID, mapFile)
	if err != nil || strings.Contains(fmt.Sprint(es), "10.0.0.9") {
		t.Fatalf("current worker after the revert: %+v %v", es, err)
	}
}

// Tier 2: a command relayed to an old worker killed moments before gets
// the master's own answer, as an error naming the worker. haproxy 3.0
// writes "Can't find the target PID ..." and then, about one time in
// four, leaves the connection open: waiting for its EOF cost the whole
// per-worker bound (and, before there was one, the caller's budget).
func TestRelayToKilledWorkerAnswers(t *testing.T) {
	for i := range 6 {
		m, mapFile, _ := twoGenerations(t, "10.0.0.1 a\n", "")
		ctx := ctxT(t)
		rt := runtime.New(m.Client)
		ps, err := rt.Processes(ctx)
		if err != nil || len(ps) != 2 {
			t.Fatalf("%+v %v", ps, err)
		}
		old := ps[1].PID
		_ = syscall.Kill(int(old), syscall.SIGKILL)
		time.Sleep(time.Duration(i*40) * time.Millisecond)
		_, err = rt.Map(ctx, old, mapFile)
		if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), fmt.Sprintf("worker %d: Can't", old)) {
			t.Fatalf("try %d: %v, want the master's relay error naming worker %d", i, err, old)
		}
		if es, err := rt.Map(ctx, ps[0].PID, mapFile); err != nil || len(es) != 1 {
			t.Fatalf("current worker after: %+v %v", es, err)
		}
	}
}
