package validate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/config"
)

// headerBefore finds, by reading the text alone, the section header at or
// above line n: "backend db", "defaults", "global"; "" when none. It is
// the independent oracle the parser's SectionAt is checked against.
func headerBefore(lines []string, n int) string {
	for i := n - 1; i >= 0 && i < len(lines); i-- {
		w := strings.Fields(strings.SplitN(lines[i], "#", 2)[0])
		if len(w) > 0 && sectionKeywords[w[0]] {
			return strings.Join(w[:min(2, len(w))], " ")
		}
	}
	return ""
}

// TestFindingSectionContainsLine is the consistency contract of a
// finding: its section is the one that contains its file and line, for
// every golden config, with the fact rules fed too.
func TestFindingSectionContainsLine(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(goldenDir, "*.cfg"))
	facts := &Facts{
		DB:     map[string]map[string]DBServerFacts{},
		Kernel: &KernelFacts{Sysctls: map[string]string{"net.ipv4.tcp_keepalive_time": "7200", "net.ipv4.tcp_retries2": "15", kernelErrKey: "x"}},
		Path: &config.Path{
			Middleboxes: []config.Middlebox{{Name: "fw", Kind: "fortigate", Hop: "server"}, {Name: "f5", Kind: "f5-ltm", Hop: "client"}},
			Clients:     []config.Client{{Name: "nova", Kind: "sqlalchemy", PoolRecycle: cdur(time.Hour)}},
		},
	}
	n := 0
	for _, c := range cases {
		cfg, err := Parse(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range cfg.Backends {
			facts.DB[b.Name] = map[string]DBServerFacts{}
			for _, s := range b.Servers {
				facts.DB[b.Name][s.Name] = dbf("10", "2")
			}
		}
		text, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(text), "\n")
		for _, f := range DefaultRegistry().Lint(cfg, facts) {
			n++
			if f.File != c {
				t.Errorf("%s: finding in file %q", c, f.File)
				continue
			}
			if want := headerBefore(lines, f.Line); f.Section != want {
				t.Errorf("%s:%d %s: section %q, but the line is in %q", filepath.Base(c), f.Line, f.Rule, f.Section, want)
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d findings checked", n)
	}
}

func TestSectionAt(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.cfg")
	b := filepath.Join(dir, "b.cfg")
	if err := os.WriteFile(a, []byte("# top\nglobal\n    maxconn 1\ndefaults\n    mode tcp\nresolvers dns\n    nameserver n 127.0.0.1:53\nbackend db\n    server s 127.0.0.1:3306\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("    # outside any section\nglobal\n    nbthread 1\nfrontend fe\n    bind 127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(a, b, a) // a named twice
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		pos  Pos
		want string
	}{
		{Pos{a, 1}, ""}, {Pos{a, 2}, "global"}, {Pos{a, 3}, "global"}, {Pos{a, 5}, "defaults"},
		{Pos{a, 7}, "resolvers dns"}, {Pos{a, 8}, "backend db"}, {Pos{a, 99}, "backend db"},
		{Pos{b, 1}, ""}, {Pos{b, 3}, "global"}, {Pos{b, 5}, "frontend fe"},
		{Pos{a, 0}, ""}, {Pos{"other.cfg", 3}, ""},
	} {
		if got := cfg.SectionAt(tt.pos); got != tt.want {
			t.Errorf("SectionAt(%s) = %q, want %q", tt.pos, got, tt.want)
		}
	}
}

// TestWholeConfigFindingsWithoutGlobal: with no global section, HA010
// points at the timer that makes the longest idle (here in defaults) and
// KN200 at no line at all; neither claims a "global" that is not there.
func TestWholeConfigFindingsWithoutGlobal(t *testing.T) {
	cfg, err := ParseReader("x.cfg", strings.NewReader("defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 8h\n    timeout server 8h\nlisten db\n    bind 127.0.0.1:3307\n    server s 127.0.0.1:3306\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := &Facts{Kernel: &KernelFacts{Sysctls: map[string]string{kernelErrKey: "permission denied"}}}
	seen := map[string]Finding{}
	for _, x := range DefaultRegistry().Lint(cfg, f) {
		seen[x.Rule] = x
	}
	if x := seen["HA010"]; x.File != "x.cfg" || x.Line != 4 || x.Section != "defaults" || !strings.Contains(x.Message, "listen 'db'") {
		t.Errorf("HA010 %+v", x)
	}
	if x := seen["KN200"]; x.File != "x.cfg" || x.Line != 0 || x.Section != "" {
		t.Errorf("KN200 %+v", x)
	}
}
