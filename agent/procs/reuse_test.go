package procs

import (
	"context"
	"os/exec"
	"testing"

	"github.com/shirou/gopsutil/v3/process"
)

// TestDescribeRechecksTheSelection: the lister selects by comm and exe,
// then reads the details. If the PID was reused in between (the haproxy
// exited, another program got its PID), the details and the start time
// the kill guard checks belong to that other program: it must not be
// listed, or a kill of the "ghost" would hit it. Simulated with a sleep
// process described as if "haproxy" had been read for its PID.
func TestDescribeRechecksTheSelection(t *testing.T) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() { _ = cmd.Process.Kill(); <-done }()
	gp := &process.Process{Pid: int32(cmd.Process.Pid)}
	p, ok, err := describe(context.Background(), gp, []string{"haproxy"}, "haproxy")
	if err == nil && ok {
		t.Fatalf("a sleep process was listed as haproxy: %+v", p)
	}
	p, ok, err = describe(context.Background(), gp, []string{"sleep"}, "sleep")
	if err != nil || !ok || p.Comm != "sleep" || p.StartTicks == 0 {
		t.Fatalf("the real selection: %+v %v %v", p, ok, err)
	}
}
