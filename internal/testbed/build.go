package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var haguardBuild struct {
	once sync.Once
	path string
	err  error
}

// TestHooksTag is the build tag that compiles in haguard's test hooks.
const TestHooksTag = "haguard_testhooks"

// BuildHaguard builds ./cmd/haguard (with TestHooksTag) once per test process into a directory
// under StateRoot (not /tmp, which the box cannot see) and returns the
// binary's path, usable on the host and inside the box (s.Run). A crashed
// run's binary is removed by the next run.
func BuildHaguard(t testing.TB) string {
	t.Helper()
	haguardBuild.once.Do(func() {
		haguardBuild.path, haguardBuild.err = buildHaguard()
	})
	if haguardBuild.err != nil {
		t.Fatalf("testbed: %v", haguardBuild.err)
	}
	return haguardBuild.path
}

func buildHaguard() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(StateRoot(), "runs", self().String()+".bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "haguard")
	// The crash tests' pause hook (host/pause_hooks.go) is compiled in
	// here only; the shipped binary (make build) has none.
	cmd := exec.Command("go", "build", "-tags", TestHooksTag, "-o", out, "./cmd/haguard")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -tags %s ./cmd/haguard: %w\n%s", TestHooksTag, err, b)
	}
	return out, nil
}

// moduleRoot walks up from the working directory to the go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}
