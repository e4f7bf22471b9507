package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every entry of subcommands builds the command it is named after, and
// the whole tree holds each once.
func TestSubcommandNames(t *testing.T) {
	a := &app{}
	seen := map[string]bool{}
	for _, s := range a.subcommands() {
		if got := s.build().Name(); got != s.name {
			t.Errorf("subcommand %q builds %q", s.name, got)
		}
		seen[s.name] = true
	}
	for _, c := range a.rootCmd("").Commands() {
		if !seen[c.Name()] && c.Name() != "help" && c.Name() != "completion" {
			t.Errorf("the tree has %q, which subcommands does not list", c.Name())
		}
	}
	if n := len(a.rootCmd("reload").Commands()); n != 1 {
		t.Errorf("rootCmd(reload) built %d commands, want 1", n)
	}
}

func TestInvoked(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"reload", "--candidate", "x"}, "reload"},
		{[]string{"--format", "json", "status"}, "status"},
		{[]string{"--format=json", "--config-file", "/etc/h.yaml", "--log-level", "debug", "ghosts"}, "ghosts"},
		{[]string{"--config-file=reload", "probe"}, "probe"},
		{[]string{"--format", "reload"}, ""}, // the value, not a command
		{[]string{"--version"}, ""},
		{[]string{"--unit", "x", "reload"}, ""}, // not a root flag: cobra decides
		{[]string{"--", "reload"}, ""},
		{[]string{"help", "reload"}, "help"},
	} {
		if got := invoked(c.args); got != c.want {
			t.Errorf("invoked(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}

// Building one command changes nothing a user sees: its help, a flag
// before it, and the errors of names and flags that are not there.
func TestOneCommandTreeBehavesAsTheWhole(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--format", "json", "version"}, 0, `"version"`},
		{[]string{"reload", "--help"}, 0, "--candidate"},
		{[]string{"relaod"}, 2, "Did you mean this?"},
		{[]string{"--bogus", "status"}, 2, "unknown flag: --bogus"},
		{[]string{"help"}, 0, "clustercheck"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), c.args, &out, &errOut)
		if code != c.code || !strings.Contains(out.String()+errOut.String(), c.out) {
			t.Errorf("%q: exit %d, want %d with %q\nstdout: %s\nstderr: %s", c.args, code, c.code, c.out, out.String(), errOut.String())
		}
	}
}
