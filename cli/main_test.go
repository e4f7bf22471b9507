package cli

import (
	"os"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
)

// TestMain guards the host around the tier-3 tests of this package (the
// box must not clean the host's /tmp; nothing started may outlive the run).
func TestMain(m *testing.M) { os.Exit(testbed.RunMain(m)) }
