package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haguard/haguard/cli"
	"github.com/haguard/haguard/internal/manpages"
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

// Every command of the real tree gets a page of its own, titled after it,
// with every section the issue asks for, and defaults as haguard.yaml
// makes them, whatever the build machine's environment says.
func TestGendocsEveryPage(t *testing.T) {
	t.Setenv("HAGUARD_FORMAT", "json")
	t.Setenv("HAGUARD_CLUSTERCHECK_DSN", "root:s3cret@tcp(127.0.0.1:3306)/")
	dir := t.TempDir()
	if code := run([]string{"-version", "v1.2.3", "-man", dir}, io.Discard); code != 0 {
		t.Fatalf("gendocs exit %d", code)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	want := len(manpages.Commands(cli.Root("v1.2.3")))
	if len(pages) != want || want < 11 {
		t.Fatalf("%d pages, want one per command (%d)", len(pages), want)
	}
	sections := []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "FILES", "EXAMPLES", "SEE ALSO"}
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		page := string(b)
		name := strings.TrimSuffix(filepath.Base(p), ".1")
		if title := `.TH "` + strings.ToUpper(name) + `" "1"`; !strings.HasPrefix(page, title) {
			t.Errorf("%s: starts %.40q, want %s", name, page, title)
		}
		at := 0
		for _, s := range sections {
			i := strings.Index(page[at:], "\n.SH "+s+"\n")
			if i < 0 {
				t.Errorf("%s: no %s section (or out of order)", name, s)
				continue
			}
			at += i
		}
		for _, bad := range []string{"docs/", "deploy/", "s3cret", "(default: json)", "Exit codes", "Examples:"} {
			if strings.Contains(page, bad) {
				t.Errorf("%s: contains %q", name, bad)
			}
		}
	}
	ghosts, _ := os.ReadFile(filepath.Join(dir, "haguard-ghosts.1"))
	if !strings.Contains(string(ghosts), "(default: sweep.kill_grace, 10s)") || strings.Contains(string(ghosts), "(default: 0s)") {
		t.Errorf("haguard-ghosts.1: --grace does not show the effective default:\n%s", ghosts)
	}
}

func TestGendocsNeedsADirectory(t *testing.T) {
	if code := run(nil, io.Discard); code != 2 {
		t.Fatalf("exit %d, want 2 (usage)", code)
	}
}
