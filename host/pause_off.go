//go:build !haguard_testhooks

package host

import (
	"context"
	"log/slog"

	"github.com/haguard/haguard/agent/runtime"
)

// testPause is nil in the production binary: the crash tests' hook is
// compiled in only with -tags haguard_testhooks (pause_hooks.go).
func testPause(*slog.Logger) func(context.Context, string) { return nil }

// testBeforeProcess is nil in the production binary (pause_hooks.go).
func testBeforeProcess(*slog.Logger) func(runtime.Process) { return nil }
