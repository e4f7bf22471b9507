package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLinksNoTestCode: the shipped binary (make build, no tags)
// links neither the testing package nor the test bed nor the man-page
// generator (packaging/cmd/gendocs has it) nor a Prometheus client
// library (start-up), and carries no test hook
// (those are compiled in only with -tags haguard_testhooks).
func TestBinaryLinksNoTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed only %d packages: %s", len(deps), out)
	}
	for _, d := range deps {
		if d == "testing" || strings.Contains(d, "/internal/testbed") || strings.HasSuffix(d, "test") && strings.HasPrefix(d, "github.com/haguard/") ||
			d == "github.com/spf13/cobra/doc" || strings.HasSuffix(d, "/internal/manpages") ||
			// start-up: client_golang's init builds a global registry (2.4 ms)
			strings.HasPrefix(d, "github.com/prometheus/") || strings.HasPrefix(d, "google.golang.org/protobuf") {
			t.Errorf("the binary links %s", d)
		}
	}
	hooks, err := exec.Command("go", "list", "-f", "{{join .GoFiles \" \"}}", "../../host").CombinedOutput()
	if err != nil {
		t.Fatalf("go list host: %v\n%s", err, hooks)
	}
	if strings.Contains(string(hooks), "pause_hooks.go") || !strings.Contains(string(hooks), "pause_off.go") {
		t.Errorf("host without tags builds %s; want pause_off.go and not pause_hooks.go", hooks)
	}
}
