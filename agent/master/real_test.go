package master_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/internal/testbed/mastertest"
)

// TestShowProcRealHAProxy drives the installed haproxy in master-worker
// mode through a start, a reload with a held connection (an old worker
// appears), a reload that fails after passing `haproxy -c` (a bind on a
// non-local address), and a good reload again.
func TestShowProcRealHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	backend := testbed.TCPBackend(t)
	port := testbed.FreePort(t)
	listen := net.JoinHostPort("127.0.0.1", itoa(port))
	good := testbed.TCPProxyConfig(listen, backend)
	m := mastertest.Start(t, good)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sp, err := m.ShowProc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int(sp.Master.PID) != m.PID || sp.Reloads != 0 || sp.FailedReloads != 0 || len(sp.Workers) != 1 || len(sp.OldWorkers) != 0 {
		t.Fatalf("fresh master: %+v", sp)
	}
	first := sp.Workers[0]
	if first.Generation != 0 || first.Version == "" {
		t.Fatalf("first worker: %+v", first)
	}

	// Hold a connection through the first worker, then reload.
	conn, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, len(testbed.Greeting))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(buf); err != nil {
		t.Fatalf("no greeting through haproxy: %v", err)
	}
	r, err := m.Client.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reported {
		t.Logf("this haproxy reports reloads synchronously: %+v", r)
	}
	sp, err = m.WaitFor(ctx, func(sp *master.ShowProc) bool {
		return sp.Reloads == 1 && len(sp.Workers) == 1 && sp.Workers[0].Generation == 1
	})
	if err != nil {
		t.Fatalf("after reload: %v (%+v)", err, sp)
	}
	if len(sp.OldWorkers) != 1 || sp.OldWorkers[0].PID != first.PID || sp.OldWorkers[0].Generation != 0 || !sp.OldWorkers[0].Old {
		t.Fatalf("the worker holding a connection should be the one old worker: %+v", sp.OldWorkers)
	}
	second := sp.Workers[0]

	// A config that passes `haproxy -c` but cannot bind.
	m.WriteConfig(t, good+"\nlisten broken\n\tbind 10.254.254.254:"+itoa(testbed.FreePort(t))+"\n\tserver s1 "+backend+"\n")
	sp = m.Reload(t)
	if sp.Reloads != 2 || sp.FailedReloads != 1 || !sp.LastReloadFailed() {
		t.Fatalf("failed reload not counted: %+v", sp)
	}
	if w := mastertest.Serving(t, sp); w.PID != second.PID || w.Generation != 1 {
		t.Fatalf("after a failed reload the generation-1 worker keeps serving: %+v", sp)
	}

	m.WriteConfig(t, good)
	sp = m.Reload(t)
	if sp.Reloads != 3 || sp.FailedReloads != 0 || len(sp.Workers) != 1 || sp.Workers[0].Generation != 3 {
		t.Fatalf("a good reload resets failed and makes generation 3: %+v", sp)
	}

	if _, err := m.Client.StartupLogs(ctx); err != nil && !errors.Is(err, master.ErrUnsupported) {
		t.Fatalf("show startup-logs: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestShowProcDuringReloadIsReexecuting polls `show proc` as fast as it
// can through reloads (SIGUSR2, as systemd's ExecReload sends it): every
// error the master gives while it re-executes must be one that
// master.Reexecuting names, or a sweep in that window loses the
// master's word on the generations (3.0.11 resets connections for a
// moment, besides refusing them).
func TestShowProcDuringReloadIsReexecuting(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	listen := net.JoinHostPort("127.0.0.1", itoa(testbed.FreePort(t)))
	m := mastertest.Start(t, testbed.TCPProxyConfig(listen, testbed.TCPBackend(t)))
	seen := map[string]int{}
	for i := 1; i <= 5; i++ {
		if err := syscall.Kill(m.PID, syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			sp, err := m.Client.ShowProc(ctx)
			cancel()
			if err != nil {
				if !master.Reexecuting(err) {
					t.Fatalf("reload %d: show proc: %v: not an error of a re-executing master", i, err)
				}
				seen[errClass(err)]++
			} else if sp.Reloads == i && len(sp.Workers) == 1 && sp.Workers[0].Generation == i {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("reload %d not seen in show proc: %+v\n%s", i, sp, m.Output())
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Logf("errors while re-executing, by kind: %v", seen)
}

func errClass(err error) string {
	for _, e := range []error{master.ErrEmptyOutput, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return err.Error()
}
