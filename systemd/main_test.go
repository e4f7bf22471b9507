package systemd_test

import (
	"os"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
)

// TestMain guards the host around the real-binary and sandbox tests: the
// host's /tmp must survive, and nothing they started may outlive the run.
func TestMain(m *testing.M) { os.Exit(testbed.RunMain(m)) }
