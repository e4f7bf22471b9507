package facts

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

// keepaliveElsewhere sets tcp_keepalive_time in pid's namespace to a
// value unlike ours, with sysctl(8) through nsenter, and returns it.
func keepaliveElsewhere(t *testing.T, pid int32) string {
	t.Helper()
	own := Kernel("", 0).Sysctls["net.ipv4.tcp_keepalive_time"]
	v := strconv.Itoa(1000 + int(time.Now().UnixNano()%4000))
	if v == own {
		v = "4999"
	}
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(int(pid)), "-n", "sysctl", "-w", "net.ipv4.tcp_keepalive_time="+v).CombinedOutput()
	if err != nil {
		t.Fatalf("sysctl -w in the namespace: %v: %s", err, out)
	}
	return v
}

// TestKernelInHAProxysNamespace: the facts are the sysctls of the given
// process's network namespace, not haguard's.
func TestKernelInHAProxysNamespace(t *testing.T) {
	testbed.Require(t, testbed.TierSystem) // root: unshare, setns
	pid := testbed.ProcessInNewNetns(t)
	want := keepaliveElsewhere(t, pid)
	own := Kernel("", 0)
	if own.Sysctls["net.ipv4.tcp_keepalive_time"] == want {
		t.Fatalf("our own namespace reads %s too", want)
	}
	k := Kernel("", pid)
	if got := k.Sysctls["net.ipv4.tcp_keepalive_time"]; got != want {
		t.Fatalf("tcp_keepalive_time in pid %d's namespace: %q, want %s (ours: %s)", pid, got, want, own.Sysctls["net.ipv4.tcp_keepalive_time"])
	}
	if k.Sysctls[KernelErrKey] != "" || k.Sysctls["net.ipv4.tcp_retries2"] == "" {
		t.Fatalf("sysctls %v", k.Sysctls)
	}
	if self := Kernel("", int32(os.Getpid())); self.Sysctls["net.ipv4.tcp_keepalive_time"] != own.Sysctls["net.ipv4.tcp_keepalive_time"] {
		t.Fatalf("our own pid: %v", self.Sysctls)
	}
}

// TestKernelNotPermitted runs this test binary again without
// CAP_SYS_ADMIN (as deploy/haguard.service runs it): the namespace
// cannot be entered, so no value is used, and the error says why.
func TestKernelNotPermitted(t *testing.T) {
	if v := os.Getenv("HAGUARD_FACTS_NETNS_PID"); v != "" {
		pid, _ := strconv.Atoi(v)
		k := Kernel("", int32(pid))
		fmt.Printf("sysctls=%d err=%s\n", len(k.Sysctls), k.Sysctls[KernelErrKey])
		os.Exit(0)
	}
	testbed.Require(t, testbed.TierSystem)
	pid := testbed.ProcessInNewNetns(t)
	keepaliveElsewhere(t, pid)
	cmd := exec.Command("setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--", os.Args[0], "-test.run=^TestKernelNotPermitted$")
	cmd.Env = append(os.Environ(), "HAGUARD_FACTS_NETNS_PID="+strconv.Itoa(int(pid)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"sysctls=1 ", fmt.Sprintf("network namespace of haproxy's master (pid %d)", pid), "not permitted", "none were used"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
