package procs

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// TestReadOfAReapedProcessIsGone: a /proc/PID file opened while the
// process lived and read after it was reaped fails with ESRCH, not
// ENOENT (the race of a sweep reading a process that exits). The sweep
// and the kill guard treat both as "exited".
func TestReadOfAReapedProcessIsGone(t *testing.T) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	files := map[string]*os.File{}
	for _, name := range []string{"stat", "cgroup"} {
		f, err := os.Open("/proc/" + pid + "/" + name)
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal(err)
		}
		defer f.Close()
		files[name] = f
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for name, f := range files {
		_, err := io.ReadAll(f)
		if err == nil {
			t.Fatalf("/proc/PID/%s of a reaped process read fine", name)
		}
		if !gone(err) {
			t.Errorf("/proc/PID/%s: %v does not count as an exited process", name, err)
		}
	}
	if !gone(func() error { _, err := os.ReadFile("/proc/" + pid + "/stat"); return err }()) {
		t.Error("ENOENT does not count as an exited process")
	}
}
