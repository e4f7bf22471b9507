package testbed

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestSandboxBootsSystemd(t *testing.T) {
	s := Boot(t)
	ctx := testCtx(t)
	out, err := s.Systemctl(ctx, "is-system-running")
	if err != nil && strings.TrimSpace(out) != "degraded" {
		t.Fatalf("is-system-running: %q %v", out, err)
	}
	if st := strings.TrimSpace(out); st != "running" {
		failed, _ := s.Systemctl(ctx, "--failed", "--no-legend", "--plain")
		t.Errorf("box state %q, want running (0 failed units); failed:\n%s", st, failed)
	}
	// PID 1 inside is systemd, in its own cgroup namespace: clean paths.
	comm, _, err := s.Run(ctx, "cat", "/proc/1/comm", "/proc/1/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(comm, "systemd\n") || !strings.Contains(comm, "0::/init.scope") {
		t.Errorf("box PID 1: got %q, want systemd in 0::/init.scope", comm)
	}
	// The box's /tmp is private: a file there does not appear on the host.
	if _, _, err := s.Run(ctx, "touch", "/tmp/haguard-box-only"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/tmp/haguard-box-only"); err == nil {
		t.Error("a file created in the box's /tmp appeared in the host's /tmp")
	}
	if _, err := os.Stat(s.HostPath("/tmp/haguard-box-only")); err != nil {
		t.Errorf("HostPath does not reach the box's /tmp: %v", err)
	}
}

func TestSandboxRunsHaguard(t *testing.T) {
	bin := BuildHaguard(t)
	s := Boot(t)
	out, _, err := s.Run(testCtx(t), bin, "version")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) == "" {
		t.Error("haguard version printed nothing")
	}
}

func TestSandboxCloseLeavesNothing(t *testing.T) {
	Require(t, TierSystem)
	_, devLogErr := os.Lstat("/dev/log")
	ctx := testCtx(t)
	s, err := Open(ctx, Options{Dir: RunDir(t), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Spawn(ctx, "sleep", "600")
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	if p.BoxPID == 0 || p.BoxPID == p.HostPID {
		t.Errorf("sleep: box pid %d, host pid %d: want a distinct pid inside the box", p.BoxPID, p.HostPID)
	}
	if got, err := s.HostPIDOf(p.BoxPID); err != nil || got != p.HostPID {
		t.Errorf("HostPIDOf(%d) = %d, %v; want %d", p.BoxPID, got, err, p.HostPID)
	}
	hostPID, cg := s.HostPID(), s.Cgroup()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if p.Alive() {
		t.Errorf("process %d started in the box survived Close", p.HostPID)
	}
	if _, err := StartTime(hostPID); err == nil {
		t.Errorf("box systemd %d survived Close", hostPID)
	}
	if _, err := os.Stat(cg); err == nil {
		t.Errorf("cgroup %s survived Close", cg)
	}
	if _, err := os.Lstat("/dev/log"); (err == nil) != (devLogErr == nil) {
		t.Errorf("the host's /dev/log changed (before: %v, after: %v)", devLogErr, err)
	}
}
