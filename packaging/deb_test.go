package packaging

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// testDescribe is what the test stamps into the binary, as make build
// stamps `git describe`.
const (
	testDescribe   = "v9.8.7-3-gabcdef0"
	testMaintainer = "Test Builder <builder@haguard.example.org>"
)

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestBuildDeb builds the real package from the repository and reads it
// back with dpkg-deb: control fields, file list, conffile, maintainer
// scripts, and the shipped files themselves.
func TestBuildDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and the package; -short runs unit tests only")
	}
	res, dir := builtPackage(t)
	if want := filepath.Join(dir, "dist", "haguard_9.8.7+git3.abcdef0_amd64.deb"); res.Path != want {
		t.Errorf("package at %s, want %s", res.Path, want)
	}
	if res.Version != testDescribe || res.DebVersion != "9.8.7+git3.abcdef0" {
		t.Errorf("versions %q / %q", res.Version, res.DebVersion)
	}

	for field, want := range map[string]string{
		"Package": "haguard", "Version": "9.8.7+git3.abcdef0", "Architecture": "amd64", "Section": "admin",
		"Maintainer": testMaintainer,
	} {
		if got := strings.TrimSpace(dpkgDeb(t, "-f", res.Path, field)); got != want {
			t.Errorf("control %s = %q, want %q", field, got, want)
		}
	}
	if got := strings.TrimSpace(dpkgDeb(t, "-I", res.Path, "conffiles")); got != "/etc/haguard/haguard.yaml" {
		t.Errorf("conffiles = %q, want /etc/haguard/haguard.yaml", got)
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		got := dpkgDeb(t, "-I", res.Path, script)
		want, err := os.ReadFile(filepath.Join("scripts", script))
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("control %s differs from packaging/scripts/%s", script, script)
		}
	}

	root := filepath.Join(dir, "root")
	dpkgDeb(t, "-x", res.Path, root)
	for _, p := range []string{
		"usr/bin/haguard",
		"lib/systemd/system/haguard.service",
		"etc/haguard/haguard.yaml",
		"usr/share/man/man1/haguard.1.gz",
		"usr/share/man/man1/haguard-version.1.gz",
		"usr/share/bash-completion/completions/haguard",
		"usr/share/zsh/vendor-completions/_haguard",
		"usr/share/fish/vendor_completions.d/haguard.fish",
		"usr/share/doc/haguard/install.md",
		"usr/share/doc/haguard/runbook.md",
		"usr/share/doc/haguard/copyright",
		"usr/share/doc/haguard/changelog.gz",
		"usr/share/lintian/overrides/haguard",
	} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("package lacks /%s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/share/man/man1/haguard-gendocs.1.gz")); err == nil {
		t.Error("package has a man page for the hidden gendocs command")
	}
	sameFile(t, filepath.Join(root, "lib/systemd/system/haguard.service"), "../deploy/haguard.service")
	sameFile(t, filepath.Join(root, "etc/haguard/haguard.yaml"), "../deploy/haguard.yaml")
	sameFile(t, filepath.Join(root, "usr/share/haguard/haproxy-reload.conf"), "../deploy/haproxy-reload.conf")

	out, err := exec.Command(filepath.Join(root, "usr/bin/haguard"), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "haguard "+testDescribe+" ") {
		t.Errorf("packaged haguard version: %q, %v; want it to print %s", out, err, testDescribe)
	}
	// Every page points only at what the package installs.
	pages, _ := filepath.Glob(filepath.Join(root, "usr/share/man/man1/*.1.gz"))
	if len(pages) < 11 {
		t.Errorf("%d man pages, want one per command", len(pages))
	}
	docRef := regexp.MustCompile(`/usr/share/doc/haguard/[A-Za-z0-9_.-]*[A-Za-z0-9_]`)
	for _, p := range pages {
		text := strings.ReplaceAll(gunzip(t, p), `\-`, "-") // roff's minus sign
		for _, ref := range docRef.FindAllString(text, -1) {
			if _, err := os.Stat(filepath.Join(root, ref)); err != nil {
				t.Errorf("%s points at %s, which the package does not install", filepath.Base(p), ref)
			}
		}
	}
	page := gunzip(t, filepath.Join(root, "usr/share/man/man1/haguard.1.gz"))
	if !strings.Contains(page, `.TH "HAGUARD" "1"`) || !strings.Contains(page, "haguard "+testDescribe) {
		t.Errorf("haguard.1 lacks its header or version:\n%.400s", page)
	}
}

// built is the package the tests of this file share: built once, with
// make build's flags, removed by TestMain.
var built struct {
	once sync.Once
	dir  string
	res  Result
	err  error
}

// builtPackage builds the package once per test run; dir holds the
// binary and dist/.
func builtPackage(t *testing.T) (Result, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and the package; -short runs unit tests only")
	}
	for _, tool := range []string{"dpkg-deb", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (Debian packages dpkg, make)", tool, err)
		}
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "haguard-pkgtest-"); built.err != nil {
			return
		}
		bin := filepath.Join(built.dir, "haguard")
		cmd := exec.Command("make", "-s", "-C", "..", "build", "BIN="+bin, "VERSION="+testDescribe)
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("make build: %w\n%s", err, out)
			return
		}
		built.res, built.err = Build(context.Background(), Options{Root: "..", Binary: bin,
			OutDir: filepath.Join(built.dir, "dist"), Maintainer: testMaintainer})
	})
	if built.err != nil {
		t.Fatalf("build the package: %v", built.err)
	}
	return built.res, built.dir
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Errorf("%s differs from %s", a, b)
	}
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("%s: gzip header carries name %q / time %v (want none, like gzip -n)", path, zr.Name, zr.ModTime)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(data)
}

func TestLoadInfoRejectsUnknownVariables(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "nfpm.yaml")
	if err := os.WriteFile(cfg, []byte("name: haguard\narch: amd64\nversion: ${DEB_VERSION}\nversion_schema: none\ncontents:\n  - src: ${TYPO}/x\n    dst: /x\n    expand: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := loadInfo(cfg, map[string]string{"DEB_VERSION": "1.0"})
	if err == nil || !strings.Contains(err.Error(), "unknown variables TYPO") {
		t.Fatalf("loadInfo: %v, want unknown variables TYPO", err)
	}
}
