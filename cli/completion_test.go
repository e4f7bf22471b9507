package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// buildHaguardForDocs compiles the haguard command into dir/haguard, so
// that a test can run the real binary the way a shell does.
func buildHaguardForDocs(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "haguard")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/haguard")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBashCompletion drives the generated bash completion the way bash
// does on <TAB>: source the script, fill COMP_WORDS/COMP_CWORD, call the
// completion function it registered for haguard, and read COMPREPLY. The
// script calls the real binary (`haguard __complete re`) from PATH.
func TestBashCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and needs bash-completion (make deps); -short runs unit tests only")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	dir := t.TempDir()
	buildHaguardForDocs(t, dir) // the script calls it from PATH
	// bash-completion's loader finds the script by command name in
	// $BASH_COMPLETION_USER_DIR/completions, as it would in
	// /usr/share/bash-completion/completions once the package is installed.
	compl := filepath.Join(dir, "completions")
	if out, err := exec.Command("go", "run", "../packaging/cmd/gendocs", "-completions", compl).CombinedOutput(); err != nil {
		t.Fatalf("gendocs: %v\n%s", err, out)
	}
	const loader = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(loader); err != nil {
		t.Fatalf("%v (Debian package bash-completion; make deps installs it)", err)
	}
	tab := func(line string) []string {
		t.Helper()
		script := `set -u
source ` + loader + `
__load_completion haguard || { echo "bash-completion found no completion for haguard" >&2; exit 1; }
fn=$(complete -p haguard | sed -E 's/.*-F ([^ ]+) .*/\1/')
read -r -a COMP_WORDS <<<"$LINE"
[[ "$LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$LINE"; COMP_POINT=${#LINE}; COMP_TYPE=9; COMP_KEY=9
"$fn" haguard "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
`
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"),
			"BASH_COMPLETION_USER_DIR="+dir, "LINE="+line, "COLUMNS=200")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", line, err, stderr.String())
		}
		var words []string
		for _, w := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if w = strings.TrimSpace(w); w != "" {
				words = append(words, w)
			}
		}
		return words
	}

	// "ver" is always there; "re" must offer reload once reload is registered.
	if got := tab("haguard ver"); len(got) != 1 || got[0] != "version" {
		t.Errorf("haguard ver<TAB> offered %q, want [version]", got)
	}
	// Every visible command that starts with "re" (reload, ...) and
	// nothing else.
	var want []string
	for _, c := range (&app{}).rootCmd("").Commands() {
		if c.IsAvailableCommand() && strings.HasPrefix(c.Name(), "re") {
			want = append(want, c.Name())
		}
	}
	got := tab("haguard re")
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("haguard re<TAB> offered %q, want %q", got, want)
	}
	if !slices.Contains(got, "reload") {
		t.Errorf("haguard re<TAB> offered %q, which lacks reload", got)
	}
	if got := tab("haguard gen"); len(got) != 0 {
		t.Errorf("haguard gen<TAB> offered the hidden command: %q", got)
	}
	// Flag values, through the same loader (cli/complete.go). Bash lists
	// several with their descriptions: "none      (the config alone)".
	firsts := func(ws []string) string {
		var out []string
		for _, w := range ws {
			out = append(out, strings.Fields(w)[0])
		}
		return strings.Join(out, " ")
	}
	if got := tab("haguard check --facts "); firsts(got) != "none declared live" || !strings.Contains(got[0], "(the config alone)") {
		t.Errorf("haguard check --facts <TAB> offered %q, want none declared live", got)
	}
	if got := tab("haguard probe --kind m"); strings.Join(got, " ") != "mysql" {
		t.Errorf("haguard probe --kind m<TAB> offered %q, want mysql", got)
	}
}
