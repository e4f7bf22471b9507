//go:build haguard_testhooks

package host

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/haguard/haguard/agent/runtime"
)

// testBeforeProcess is the hook of the runtime tests that kill a process
// mid-apply: HAGUARD_TEST_KILL_OLD_WORKER=1 SIGKILLs each old worker just
// before a runtime change reaches it.
func testBeforeProcess(log *slog.Logger) func(runtime.Process) {
	if os.Getenv("HAGUARD_TEST_KILL_OLD_WORKER") != "1" {
		return nil
	}
	return func(p runtime.Process) {
		if p.Current {
			return
		}
		log.Warn("test hook: killing an old worker mid-apply", "pid", p.PID)
		_ = syscall.Kill(int(p.PID), syscall.SIGKILL)
		time.Sleep(300 * time.Millisecond)
	}
}

// testPause is the hook the crash tests use, compiled in only with -tags
// haguard_testhooks (testbed.BuildHaguard builds so):
// HAGUARD_TEST_PAUSE_AT=settle sleeps HAGUARD_TEST_PAUSE_FOR (default
// 60s) once that stage is journaled, so a test can kill the run there.
func testPause(log *slog.Logger) func(context.Context, string) {
	at := os.Getenv("HAGUARD_TEST_PAUSE_AT")
	if at == "" {
		return nil
	}
	d := time.Minute
	if v, err := time.ParseDuration(os.Getenv("HAGUARD_TEST_PAUSE_FOR")); err == nil {
		d = v
	}
	return func(ctx context.Context, stage string) {
		if stage != at {
			return
		}
		log.Warn("test hook: pausing", "stage", stage, "for", d)
		fmt.Fprintf(os.Stderr, "HAGUARD_TEST_PAUSED %s\n", stage)
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}
