package packaging

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/haguard/haguard/config"
)

// The package ships deploy/haguard.yaml as /etc/haguard/haguard.yaml. It
// must load, and since it documents the defaults, it must say exactly what
// haguard does without it.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "deploy", "haguard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Parse(data)
	if err != nil {
		t.Fatalf("config.Parse(deploy/haguard.yaml): %v", err)
	}
	if diff := cmp.Diff(config.Default(), got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("deploy/haguard.yaml differs from config.Default() (-default +file):\n%s", diff)
	}
}
