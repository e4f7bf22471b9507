package manpages

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func testTree() *cobra.Command {
	root := &cobra.Command{Use: "haguard", Short: "safe reloads", Long: "haguard does it.\n\nExit codes: 0 all good; 1 negative verdict; 2 usage error; 3 the host needs a human."}
	root.PersistentFlags().String("format", "human", "output format: human or json (env HAGUARD_FORMAT)")
	sweep := &cobra.Command{Use: "sweep [--grace DURATION]", Short: "sweep ghosts", Run: func(*cobra.Command, []string) {},
		Long: `sweep looks (docs/ghosts.md, deploy/haguard.service):

  current  the unit's
  ghost    nobody's

.dot lines and back\slashes stay literal.

Exit codes:
  0  no ghost
  1  ghosts remain,
     some of them listening

Examples:
  haguard sweep --grace 5s`,
		Annotations: map[string]string{
			annotationFiles:   "/etc/haguard/haguard.yaml\tthe settings",
			annotationSeeAlso: "haguard-version(1), haproxy(1), ghosts.md",
		}}
	sweep.Flags().Duration("grace", 0, "wait before SIGKILL (default: sweep.kill_grace, 10s)")
	sweep.Flags().Int("count", 20, "attempts")
	sweep.Flags().Bool("kill", false, "kill them")
	version := &cobra.Command{Use: "version", Short: "print the version", Run: func(*cobra.Command, []string) {},
		Example:     "  haguard version",
		Annotations: map[string]string{annotationExit: "Exit codes:\n  0  printed"}}
	root.AddCommand(sweep, version, &cobra.Command{Use: "gendocs", Hidden: true, Run: func(*cobra.Command, []string) {}})
	return root
}

func TestWritePagesAndCompletions(t *testing.T) {
	root := testTree()
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1764662400")
	if err := Write(root, filepath.Join(dir, "man"), "v1.2.3"); err != nil {
		t.Fatal(err)
	}
	if err := Completions(root, filepath.Join(dir, "compl")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"man/haguard.1", "man/haguard-sweep.1", "man/haguard-version.1", "compl/haguard", "compl/_haguard", "compl/haguard.fish"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: missing or empty (%v)", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "man", "haguard-gendocs.1")); err == nil {
		t.Error("a hidden command got a man page")
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, "man", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	date := time.Unix(1764662400, 0).UTC().Format("2006-01-02")
	for name, title := range map[string]string{"haguard.1": "HAGUARD", "haguard-sweep.1": "HAGUARD-SWEEP", "haguard-version.1": "HAGUARD-VERSION"} {
		if want := `.TH "` + title + `" "1" "` + date + `" "haguard v1.2.3"`; !strings.HasPrefix(read(name), want) {
			t.Errorf("%s starts %.80q, want %q", name, read(name), want)
		}
	}

	page := read("haguard-sweep.1")
	wantInOrder(t, page, ".SH NAME\nhaguard\\-sweep \\- sweep ghosts", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS",
		".SH GLOBAL OPTIONS", ".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH FILES", ".SH EXAMPLES", ".SH SEE ALSO")
	for _, want := range []string{
		"(/usr/share/doc/haguard/ghosts.md, /lib/systemd/system/haguard.service):", // source paths as installed
		".nf\ncurrent  the unit's\nghost    nobody's\n.fi",                         // tables kept
		"\\&.dot lines and back\\eslashes stay literal.",
		"wait before SIGKILL (default: sweep.kill_grace, 10s)\n", // the effective default, not 0s
		"attempts (default: 20)\n",                               // the flag's own when not zero
		"\\fB\\-\\-kill\\fR\nkill them\n",                        // false is not a default worth printing
		".TP\n\\fB1\\fR\nghosts remain, some of them listening\n",
		"\\fBHAGUARD_FORMAT\\fR",
		"\\fI/etc/haguard/haguard.yaml\\fR\nthe settings",
		".nf\nhaguard sweep \\-\\-grace 5s\n.fi",
		"\\fBhaguard\\fR(1),\n\\fBhaguard\\-version\\fR(1),\n\\fBhaproxy\\fR(1),\n\\fI/usr/share/doc/haguard/ghosts.md\\fR",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("haguard-sweep.1 lacks %q:\n%s", want, page)
		}
	}
	for _, bad := range []string{"default: 0s", "docs/ghosts.md", "Examples:", "Exit codes"} {
		if strings.Contains(strings.ReplaceAll(page, "/usr/share/doc/haguard/ghosts.md", ""), bad) {
			t.Errorf("haguard-sweep.1 contains %q", bad)
		}
	}

	version := read("haguard-version.1")
	wantInOrder(t, version, ".SH EXIT STATUS\n.TP\n\\fB0\\fR\nprinted\n", ".SH EXAMPLES\n.RS 4\n.nf\nhaguard version\n")
	rootPage := read("haguard.1")
	wantInOrder(t, rootPage, ".SH COMMANDS\n.TP\n\\fBhaguard\\-sweep\\fR(1)\nsweep ghosts", ".SH EXIT STATUS\n.TP\n\\fB0\\fR\nall good\n.TP\n\\fB1\\fR\nnegative verdict\n")
	// A subcommand without exit codes of its own would get the root's.
}

func wantInOrder(t *testing.T, page string, parts ...string) {
	t.Helper()
	at := 0
	for _, p := range parts {
		i := strings.Index(page[at:], p)
		if i < 0 {
			t.Errorf("missing, or out of order: %q\n%s", p, page)
			return
		}
		at += i + len(p)
	}
}

func TestExitStatusForms(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Exit codes: 0 every attempt OK, 1 any failed,\n2 usage error or unreadable input.", "0=every attempt OK|1=any failed|2=usage error or unreadable input"},
		{"Exit codes (those of 'haguard reload'):\n  0  done\n  3  the host\n     needs a human", "0=done|3=the host needs a human"},
	} {
		var b bytes.Buffer
		exitStatus(&b, c.in)
		var got []string
		lines := strings.Split(b.String(), "\n")
		for i := 0; i+2 < len(lines); i++ {
			if lines[i] == ".TP" {
				code := strings.TrimSuffix(strings.TrimPrefix(lines[i+1], "\\fB"), "\\fR")
				got = append(got, code+"="+lines[i+2])
			}
		}
		if strings.Join(got, "|") != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.in, strings.Join(got, "|"), c.want)
		}
	}
}
