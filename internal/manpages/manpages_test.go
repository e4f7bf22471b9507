package manpages

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
)

func TestWritePagesAndCompletions(t *testing.T) {
	root := &cobra.Command{Use: "haguard", Short: "safe reloads"}
	root.AddCommand(&cobra.Command{Use: "version", Short: "print the version", Run: func(*cobra.Command, []string) {}},
		&cobra.Command{Use: "gendocs", Hidden: true, Run: func(*cobra.Command, []string) {}})
	dir := t.TempDir()
	if err := Write(root, filepath.Join(dir, "man"), "v1.2.3"); err != nil {
		t.Fatal(err)
	}
	if err := Completions(root, filepath.Join(dir, "compl")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"man/haguard.1", "man/haguard-version.1", "compl/haguard", "compl/_haguard", "compl/haguard.fish"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: missing or empty (%v)", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "man", "haguard-gendocs.1")); err == nil {
		t.Error("a hidden command got a man page")
	}
	page, _ := os.ReadFile(filepath.Join(dir, "man", "haguard.1"))
	if !bytes.Contains(page, []byte(`.TH "HAGUARD" "1"`)) || !bytes.Contains(page, []byte("haguard v1.2.3")) {
		t.Errorf("haguard.1 lacks its header or version:\n%.300s", page)
	}
}
