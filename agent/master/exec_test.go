package master

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestReadSettledWaitsOutAnEmptyRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "environ")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = os.WriteFile(p, []byte("A=1\x00"), 0o600)
	}()
	b, err := ReadSettled(p)
	if err != nil || string(b) != "A=1\x00" {
		t.Fatalf("got %q, %v: want the content written after the empty read", b, err)
	}
	if _, err := ReadSettled(filepath.Join(t.TempDir(), "gone")); !os.IsNotExist(err) {
		t.Fatalf("a missing file: %v, want the error at once", err)
	}
}

// A process that re-executes itself without pause, as haproxy's master
// does on a reload: its environment never reads as empty through
// ReadSettled, while a plain read catches the exec (counted, for the log).
func TestReadSettledOnAProcessInExec(t *testing.T) {
	script := filepath.Join(t.TempDir(), "loop.sh")
	if err := os.WriteFile(script, []byte("exec /bin/sh \"$0\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", script)
	cmd.Env = []string{"HAPROXY_PROCESSES=|type=m;pid=1;reloads=3;failedreloads=0"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	path := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ"
	plainEmpty := 0
	for i := 0; i < 2000; i++ {
		if b, err := os.ReadFile(path); err == nil && len(b) == 0 {
			plainEmpty++
		}
		c, ok, err := ReadCounters(cmd.Process.Pid)
		if err != nil || !ok || c.Reloads != 3 {
			t.Fatalf("read %d: %+v ok %v err %v", i, c, ok, err)
		}
	}
	t.Logf("plain reads that caught the exec: %d of 2000", plainEmpty)
}
