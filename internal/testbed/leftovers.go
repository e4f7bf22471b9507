package testbed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// StateRoot holds per-run directories and the record of processes that test
// runs started. It is outside /tmp on purpose: the sandbox mounts a private
// /tmp, so paths that both the host and the box must see live here.
// Override with HAGUARD_TESTBED_ROOT.
func StateRoot() string {
	if p := os.Getenv("HAGUARD_TESTBED_ROOT"); p != "" {
		return p
	}
	return "/var/lib/haguard-testbed"
}

// owner identifies this test process: its PID and kernel start time, so a
// recycled PID is never mistaken for a live owner.
type owner struct {
	pid   int
	start uint64
}

func self() owner {
	pid := os.Getpid()
	st, _ := StartTime(pid)
	return owner{pid, st}
}

func (o owner) alive() bool {
	st, err := StartTime(o.pid)
	return err == nil && st == o.start
}

func (o owner) String() string { return fmt.Sprintf("%d-%d", o.pid, o.start) }

func parseOwner(s string) (owner, bool) {
	p, st, ok := strings.Cut(s, "-")
	if !ok {
		return owner{}, false
	}
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(st, 10, 64)
	return owner{pid, start}, err1 == nil && err2 == nil
}

// StartTime returns the start time of pid in clock ticks since boot (field
// 22 of /proc/PID/stat). Together with the PID it names a process uniquely.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm (field 2) may hold spaces and parentheses: split after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, errors.New("short stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

var (
	reapOnce sync.Once
	runSeq   struct {
		sync.Mutex
		n int
	}
)

// RunDir returns a fresh directory under StateRoot for one test, visible at
// the same path on the host and inside the sandbox. It is removed when the
// test ends, and a crashed run's directories are removed at the next start.
func RunDir(t testing.TB) string {
	t.Helper()
	ReapLeftovers(t)
	runSeq.Lock()
	runSeq.n++
	n := runSeq.n
	runSeq.Unlock()
	dir := filepath.Join(StateRoot(), "runs", fmt.Sprintf("%s.%d", self(), n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Track records a process this run started, so that if the test process
// dies before cleaning up, the next run kills it. The returned func forgets
// it again (call it once the process is reaped).
func Track(t testing.TB, pid int, what string) (untrack func()) {
	t.Helper()
	ReapLeftovers(t)
	untrack, err := track(pid, what)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return untrack
}

// track is Track without a testing.TB, for the demo program.
func track(pid int, what string) (untrack func(), err error) {
	st, err := StartTime(pid)
	if err != nil {
		return nil, fmt.Errorf("track %s (pid %d): %w", what, pid, err)
	}
	dir := filepath.Join(StateRoot(), "procs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, fmt.Sprintf("%d-%d", pid, st))
	if err := os.WriteFile(file, []byte(self().String()+" "+what+"\n"), 0o644); err != nil {
		return nil, err
	}
	return func() { os.Remove(file) }, nil
}

// KillTracked sends SIGKILL to pid only if it is still the process that was
// started (same start time): a recycled PID is left alone.
func KillTracked(pid int, start uint64) error {
	st, err := StartTime(pid)
	if err != nil || st != start {
		return nil // gone, or the PID now names someone else
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// ReapLeftovers kills the processes and removes the run directories that a
// previous, crashed test process left behind. Entries whose owner is still
// running (another test package in the same `go test ./...`) are left alone.
// It runs once per test process.
func ReapLeftovers(t testing.TB) {
	reapLeftovers(t.Logf)
}

// reapLeftovers is ReapLeftovers with a plain logger, for the demo program.
func reapLeftovers(logf func(format string, args ...any)) {
	reapOnce.Do(func() {
		procs := filepath.Join(StateRoot(), "procs")
		entries, _ := os.ReadDir(procs)
		for _, e := range entries {
			file := filepath.Join(procs, e.Name())
			b, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			own, ok := parseOwner(strings.Fields(string(b) + " x")[0])
			if ok && own.alive() {
				continue
			}
			if victim, ok := parseOwner(e.Name()); ok {
				if err := KillTracked(victim.pid, victim.start); err == nil {
					logf("testbed: reaped leftover pid %d (%s)", victim.pid, strings.TrimSpace(string(b)))
				}
			}
			os.Remove(file)
		}
		runs := filepath.Join(StateRoot(), "runs")
		entries, _ = os.ReadDir(runs)
		for _, e := range entries {
			name, _, _ := strings.Cut(e.Name(), ".")
			if own, ok := parseOwner(name); ok && !own.alive() {
				os.RemoveAll(filepath.Join(runs, e.Name()))
			}
		}
		reapCgroups(logf)
	})
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testbed: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
