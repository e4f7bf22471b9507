package procs_test

import (
	"context"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/systemd"
)

// extraProcs is how many idle processes the benchmark adds to the host.
const extraProcs = 2000

// spawnSleepers starts n `sleep 600` children and kills them (each by
// PID, start-time guarded) when b ends.
func spawnSleepers(b *testing.B, n int) {
	b.Helper()
	type child struct {
		cmd   *exec.Cmd
		start uint64
	}
	kids := make([]child, 0, n)
	b.Cleanup(func() {
		for _, k := range kids {
			_ = testbed.KillTracked(k.cmd.Process.Pid, k.start)
		}
		for _, k := range kids {
			_ = k.cmd.Wait()
		}
	})
	for range n {
		cmd := exec.Command("sleep", "600")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			b.Fatalf("spawn sleeper %d: %v", len(kids), err)
		}
		st, err := testbed.StartTime(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		kids = append(kids, child{cmd, st})
	}
}

type staticUnit struct{}

func (staticUnit) State(_ context.Context, name string) (systemd.Unit, error) {
	return systemd.Unit{Name: name, MainPID: 1, ControlGroup: "/system.slice/haproxy.service"}, nil
}

// BenchmarkSweep compares a full sweep (process table, sockets,
// classification) with the shell pair an operator would run instead,
// on a host with extraProcs more processes (docs/benchmarks.md).
func BenchmarkSweep(b *testing.B) {
	spawnSleepers(b, extraProcs)
	n, _ := exec.Command("sh", "-c", "ls /proc | grep -c '^[0-9]'").Output()
	b.Logf("processes on the host: %s", strconv.Quote(string(n)))

	b.Run("haguard", func(b *testing.B) {
		s := &procs.Scanner{Unit: "haproxy.service", Names: []string{"haproxy"}, Systemd: staticUnit{}}
		ctx := context.Background()
		for b.Loop() {
			if _, err := s.Sweep(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ps+ss", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("sh", "-c", "ps aux | grep haproxy; ss -ltnp").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
