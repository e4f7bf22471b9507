package validate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
)

// The installed haproxy, probed once for all the tests that need it.
var (
	haproxyTargetOnce sync.Once
	haproxyTarget     *Target
	haproxyTargetErr  error
)

func installedTarget(t testing.TB) *Target {
	t.Helper()
	testbed.Require(t, testbed.TierBinary)
	haproxyTargetOnce.Do(func() {
		haproxyTarget, haproxyTargetErr = ProbeTarget(context.Background(), testbed.HAProxyBin())
	})
	if haproxyTargetErr != nil {
		t.Fatal(haproxyTargetErr)
	}
	return haproxyTarget
}

// predictNotice says what haproxy prints for line n of a file when it
// is ".notice" followed by some text: the notice, the "unexpected
// argument" alert, or the error of a line it cannot read.
func predictNotice(r *reading, file string, n int, line string) string {
	r.line = n
	lx := r.lex.split(line)
	if lx.err == nil {
		lx.err = r.outgrow(&lx, 0)
	}
	prefix := fmt.Sprintf("parsing [%s:%d]: ", file, n)
	switch {
	case lx.err != nil:
		return prefix + fmt.Sprintf("%s at position %d:", lx.err.Msg, lx.err.Col)
	case len(lx.words) > 2 && lx.words[2] != "":
		return prefix + fmt.Sprintf("Unexpected argument '%s' for '.notice'.", lx.words[2])
	case len(lx.words) > 1:
		return prefix + fmt.Sprintf("'%s'.", lx.words[1])
	}
	return prefix + "''."
}

// checkAgainstHAProxy runs text through both readers: a file whose lines
// are ".notice TEXT" and ".notice x TEXT", read by the real haproxy in
// the environment env, and by haguard's reader in the same environment.
// Between the two lines haproxy shows the first two words of TEXT, how
// many there are, and its verdict on quotes, escapes and variables.
func checkAgainstHAProxy(t *testing.T, text string, env map[string]string) {
	t.Helper()
	target := installedTarget(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "t.cfg")
	lines := []string{".notice " + text, ".notice x " + text}
	body := strings.Join(lines, "\n") + "\n.alert \"end of the probe\"\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testbed.HAProxyBin(), "-c", "-f", file)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "end of the probe") {
		t.Fatalf("haproxy did not read the probe to its end:\n%s", out)
	}
	r := newReading(ReadOptions{Env: env, Target: target}, []string{file})
	r.file = file
	for i, l := range lines {
		want := predictNotice(r, file, i+1, l)
		if !strings.Contains(string(out), want) {
			t.Errorf("line %q: haguard predicts %q, haproxy says:\n%s", l, want, out)
		}
	}
}

// FuzzTokenizeAgainstHAProxy feeds random quoting, escapes and variable
// references to haproxy and to haguard's reader, with V set to the
// second input (and E set but empty, U unset), and requires the same
// words and the same errors. Its seed corpus runs in every `go test`
// (binary tier); `go test -fuzz FuzzTokenizeAgainstHAProxy ./validate`
// explores further.
func FuzzTokenizeAgainstHAProxy(f *testing.F) {
	for _, s := range []struct{ text, v string }{
		{`"5s"`, ""}, {`'5s'`, ""}, {`\5s`, ""}, {`5\ s`, ""}, {`"${V-5s}"`, "7s"}, {`"${U-5s}"`, ""},
		{`"${E-5s}" x`, ""}, {`"$V"`, "7s"}, {`$V`, "7s"}, {`'$V'`, "7s"}, {`"\$V"`, "7s"},
		{`"${V:-5s}"`, "7s"}, {`"${V`, ""}, {`"$1"`, ""}, {`"${.FOO}"`, ""}, {`"5s`, ""}, {`'5s`, ""},
		{`"\x35s"`, ""}, {`"\x3"`, ""}, {`"${V[*]}"`, " a  b "}, {`"x${V[*]}y" z`, "a b"}, {`"${V[*}"`, "a"},
		{`"${U}" b`, ""}, {`"a${U}" b`, ""}, {`"$U" b`, ""}, {`"${.LINE}"`, ""}, {`"${.FILE}"`, ""},
		{`"${.SECTION-none}"`, ""}, {`a#b`, ""}, {`a\#b c`, ""}, {`"#b" c`, ""}, {`a"b c"d`, ""},
		{`a\ b`, ""}, {`\\`, ""}, {`\'`, ""}, {`\"`, ""}, {`"\t"`, ""}, {"a\vb", ""}, {"a\fb", ""},
		{"a \r b", ""}, {"a\rb c", ""}, {`"" b`, ""}, {`b ""`, ""}, {"b   ", ""}, {"\xe9t\xe9", ""},
		{`"$HAPROXY_LOCALPEER"`, ""}, {`"${HAPROXY_STARTUP_VERSION-none}"`, ""}, {`"${V-a}b}"`, "x"},
		{`"${V-}" z`, ""}, {`"${U-a b}" c`, ""}, {`"$V$V"`, "ab"}, {`"${V}${V}"`, ""}, {`\x41`, ""},
		{`'\x41'`, ""}, {`"'"`, ""}, {`'"'`, ""}, {`"\'"`, ""}, {`\$V`, "7s"}, {`"\z"`, ""}, {`\`, ""},
		{`"a\`, ""}, {`"$"`, ""}, {`"${"`, ""}, {`"${}"`, ""}, {`"$_x"`, ""}, {`"$V_"`, "q"},
	} {
		f.Add(s.text, s.v)
	}
	// Line 1's words fill exactly 1024 bytes, so line 2 (two bytes more)
	// makes haproxy grow its buffer and read it again: see reading.outgrow.
	f.Add(strings.Repeat("y", 1014)+` "${V-a}"`, "")
	f.Add(strings.Repeat("y", 1013)+` "${V-a}"`, "")
	f.Fuzz(func(t *testing.T, text, v string) {
		if len(text) > 2048 || len(v) > 256 || strings.ContainsAny(text, "\n\x00") || strings.ContainsRune(v, 0) {
			t.Skip("not one line, or too long")
		}
		checkAgainstHAProxy(t, text, map[string]string{"V": v, "E": ""})
	})
}
