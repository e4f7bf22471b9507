package procs

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/netns"
	"github.com/haguard/haguard/agent/sockets"
	"github.com/haguard/haguard/internal/testbed"
)

// startIn starts argv and waits (bounded) until its network namespace is
// not ours, so that the exec of unshare/nsenter has happened.
func startIn(t *testing.T, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Skipf("%s: %v", argv[0], err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	own, _ := netns.Own()
	for range 200 {
		if ns, err := netns.Of(int32(cmd.Process.Pid)); err == nil && ns != own {
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm"); err == nil && string(b) == "sleep\n" {
				return cmd
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%v did not enter another network namespace", argv)
	return nil
}

// TestListenersWhenAProcessExitsMidRead: the socket table of another
// network namespace is read through the first process seen in it. When
// that process exits during the read, /proc/PID/net/tcp is gone and the
// read yields an empty table, which must not stand for the namespace: the
// next process in it is read on its own.
func TestListenersWhenAProcessExitsMidRead(t *testing.T) {
	testbed.Require(t, testbed.TierSystem) // root: a network namespace
	a := startIn(t, "unshare", "-n", "sleep", "600")
	b := startIn(t, "nsenter", "-t", strconv.Itoa(a.Process.Pid), "-n", "sleep", "600")
	pa, pb := int32(a.Process.Pid), int32(b.Process.Pid)
	var readFor []int32
	read := func(pid int32, protos sockets.Proto) (sockets.Table, error) {
		readFor = append(readFor, pid)
		if pid == pa {
			// A exits right before its namespace's table is read.
			_ = syscall.Kill(int(pa), syscall.SIGKILL)
			for range 500 {
				if _, err := os.Stat("/proc/" + strconv.Itoa(int(pa))); err != nil {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		return sockets.ListeningIn(pid, protos)
	}
	ps := []Proc{{PID: pa}, {PID: pb}}
	if err := addListeners(ps, read); err != nil {
		t.Fatal(err)
	}
	if len(readFor) != 2 || readFor[1] != pb {
		t.Fatalf("the namespace's table was taken from a process that exited while it was read: reads for %v", readFor)
	}
	if ps[0].ListenErr == "" {
		t.Errorf("the exited process's sockets are reported as known: %+v", ps[0])
	}
}
