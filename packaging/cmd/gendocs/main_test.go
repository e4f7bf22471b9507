package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestGendocsWritesPagesAndCompletions(t *testing.T) {
	dir := t.TempDir()
	var errb bytes.Buffer
	if code := run([]string{"-version", "v1.2.3", "-man", filepath.Join(dir, "man"), "-completions", filepath.Join(dir, "compl")}, &errb); code != 0 {
		t.Fatalf("gendocs exit %d: %s", code, errb.String())
	}
	for _, name := range []string{"man/haguard.1", "man/haguard-version.1", "man/haguard-reload.1", "compl/haguard", "compl/_haguard", "compl/haguard.fish"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: missing or empty (%v)", name, err)
		}
	}
	page, _ := os.ReadFile(filepath.Join(dir, "man", "haguard.1"))
	if !bytes.Contains(page, []byte(`.TH "HAGUARD" "1"`)) || !bytes.Contains(page, []byte("haguard v1.2.3")) {
		t.Errorf("haguard.1 lacks its header or version:\n%.300s", page)
	}
}

func TestGendocsNeedsADirectory(t *testing.T) {
	if code := run(nil, io.Discard); code != 2 {
		t.Fatalf("exit %d, want 2 (usage)", code)
	}
}
