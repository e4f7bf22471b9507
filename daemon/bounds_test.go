package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/validate"
)

// TestLineBoundsAgree: the API refuses (422) exactly the lines the config
// reader cannot read, so no candidate reaches it only to fail with 500:
// the longest line the API lets through parses, one byte more does not.
func TestLineBoundsAgree(t *testing.T) {
	if api.MaxLineBytes != validate.MaxLineBytes {
		t.Fatalf("api.MaxLineBytes %d, validate.MaxLineBytes %d", api.MaxLineBytes, validate.MaxLineBytes)
	}
	for n, wantErr := range map[int]bool{api.MaxLineBytes - 1: false, api.MaxLineBytes: true} {
		p := filepath.Join(t.TempDir(), "haproxy.cfg")
		if err := os.WriteFile(p, []byte("global\n"+strings.Repeat("#", n)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := validate.Parse(p); (err != nil) != wantErr {
			t.Errorf("a line of %d bytes: %v", n, err)
		}
	}
}
