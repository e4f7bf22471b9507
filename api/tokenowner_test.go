package api

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadTokenRefusesAnotherOwner: a mode-0600 file that another
// (non-root) user owns is readable by that user, who can also chmod it
// wider at will; it is refused like a file readable by others. A symlink
// is judged by the file it points to.
func TestLoadTokenRefusesAnotherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p, link} {
		_, err := LoadTokens(path)
		var tfe *TokenFileError
		if !errors.As(err, &tfe) || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("%s: err %v, want a *TokenFileError about its owner", path, err)
		}
	}
	if err := os.Chown(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokens(link); err != nil {
		t.Errorf("root's 0600 file through a symlink: %v", err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokens(link); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Errorf("a symlink to a 0644 file: %v", err)
	}
}
