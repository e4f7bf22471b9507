package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/netns"
)

// ProcessInNewNetns starts `unshare -n sleep 600` (a fresh network
// namespace, loopback down) and returns the sleep's PID once it runs
// there. It is killed when t ends. Needs root.
func ProcessInNewNetns(t testing.TB) int32 {
	t.Helper()
	cmd := exec.Command("unshare", "-n", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("testbed: unshare -n: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	own, err := netns.Own()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	pid := int32(cmd.Process.Pid)
	for range 200 {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if ns, err := netns.Of(pid); err == nil && ns != own && string(comm) == "sleep\n" {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("testbed: unshare -n did not start sleep in a new network namespace")
	return 0
}
