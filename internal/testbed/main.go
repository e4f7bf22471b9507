package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RunMain runs a package's tests between two checks that hold for the
// whole suite: a sentinel file created in the host's /tmp before the tests
// must still be there afterwards (the box must never clean the host's
// /tmp), and no process this test process tracked (Track, Boot, Start) may
// still be alive. Use it from TestMain: func TestMain(m *testing.M) {
// os.Exit(testbed.RunMain(m)) }.
func RunMain(m *testing.M) int {
	sentinel, err := os.CreateTemp("/tmp", "haguard-testbed-sentinel-*")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed: create /tmp sentinel: %v\n", err)
		return 1
	}
	sentinel.Close()
	code := m.Run()
	if _, err := os.Stat(sentinel.Name()); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: testbed: the host's /tmp sentinel %s vanished during the suite: %v\n", sentinel.Name(), err)
		code = 1
	} else {
		os.Remove(sentinel.Name())
	}
	if left := trackedAlive(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: testbed: processes started by this suite are still alive: %s\n", strings.Join(left, "; "))
		code = 1
	}
	return code
}

// trackedAlive lists the processes this test process tracked that are
// still alive (and not zombies).
func trackedAlive() []string {
	me := self().String()
	dir := filepath.Join(StateRoot(), "procs")
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(string(b), me+" ") {
			continue
		}
		p, ok := parseOwner(e.Name())
		if ok && p.alive() && !zombie(p.pid) {
			left = append(left, fmt.Sprintf("pid %d: %s", p.pid, strings.TrimSpace(strings.TrimPrefix(string(b), me))))
		}
	}
	return left
}
