package packaging

import (
	"debug/elf"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// lintianTag is one line of lintian's output: severity, package, tag,
// the rest.
var lintianTag = regexp.MustCompile(`^([EWIPXO]): haguard(?: \w+)?: (\S+)(.*)$`)

// TestLintian runs Debian's own package checker on the package make deb
// builds (with --pedantic): no error and no warning. Overrides are
// shown, and must be exactly the one packaging/lintian-overrides
// explains; informational and pedantic tags are logged.
func TestLintian(t *testing.T) {
	res, _ := builtPackage(t)
	bin, err := exec.LookPath("lintian")
	if err != nil {
		t.Fatalf("lintian: %v (apt-get install lintian; make deps installs it)", err)
	}
	out, err := exec.Command(bin, "--pedantic", "--show-overrides", "--fail-on", "none", res.Path).CombinedOutput()
	if err != nil {
		t.Fatalf("lintian: %v\n%s", err, out)
	}
	var overridden []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		m := lintianTag.FindStringSubmatch(line)
		if m == nil {
			if strings.TrimSpace(line) != "" {
				t.Logf("lintian: %s", line)
			}
			continue
		}
		switch m[1] {
		case "E", "W":
			t.Errorf("lintian: %s", line)
		case "O":
			overridden = append(overridden, m[2])
		default:
			t.Logf("lintian: %s", line)
		}
	}
	if strings.Join(overridden, ",") != "shared-library-lacks-prerequisites" {
		t.Errorf("lintian overrides used: %v; want only shared-library-lacks-prerequisites (packaging/lintian-overrides)", overridden)
	}
}

// TestBinaryHardened reads the ELF file make build made: a static PIE
// (type DYN, no shared library needed, flagged PIE), with a RELRO segment
// and BIND_NOW, so ld.so makes the relocated data read-only before main.
func TestBinaryHardened(t *testing.T) {
	_, dir := builtPackage(t)
	f, err := elf.Open(filepath.Join(dir, "haguard"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Type != elf.ET_DYN {
		t.Errorf("ELF type %v, want ET_DYN (a position-independent executable)", f.Type)
	}
	relro := false
	for _, p := range f.Progs {
		relro = relro || p.Type == elf.PT_GNU_RELRO
	}
	if !relro {
		t.Error("no PT_GNU_RELRO segment")
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) != 0 {
		t.Errorf("the binary needs %v; it must be static (CGO_ENABLED=0), or the package must declare them", libs)
	}
	flags, err := f.DynValue(elf.DT_FLAGS)
	if err != nil || len(flags) != 1 || flags[0]&uint64(elf.DF_BIND_NOW) == 0 {
		t.Errorf("DT_FLAGS %v (%v): want BIND_NOW", flags, err)
	}
	flags1, err := f.DynValue(elf.DT_FLAGS_1)
	if err != nil || len(flags1) != 1 || flags1[0]&uint64(elf.DF_1_PIE) == 0 || flags1[0]&uint64(elf.DF_1_NOW) == 0 {
		t.Errorf("DT_FLAGS_1 %v (%v): want PIE and NOW", flags1, err)
	}
}
