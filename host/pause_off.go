//go:build !haguard_testhooks

package host

import (
	"context"
	"log/slog"
)

// testPause is nil in the production binary: the crash tests' hook is
// compiled in only with -tags haguard_testhooks (pause_hooks.go).
func testPause(*slog.Logger) func(context.Context, string) { return nil }
