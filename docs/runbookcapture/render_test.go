package runbookcapture

import (
	"strings"
	"testing"
)

const sampleCapture = "RUN DIR /var/lib/haguard-testbed/runs/x1\nLISTEN 127.0.0.1:42067\n" +
	"CONFIG:\nglobal\n\tmaxconn 512\n\n\n" +
	"##### audit probe\n$ haguard probe\n127.0.0.1:42067 mysql  FAIL 4/20\n[stderr]\ntime=2026-11-28T02:25:43Z level=INFO msg=x\n[exit 1, 0.01s]\n" +
	"\nFILE fixed.cfg:\nbackend b\n\tserver s /var/lib/haguard-testbed/runs/x1/s.sock\n\n\n" +
	"##### check fixed\n$ haguard check\n    /var/lib/haguard-testbed/runs/x1/haproxy.cfg:3: warning HA013: x\nFAILED\n[exit 1, 0.2s]\n" +
	"\n##### curl clustercheck db-node-1\n$ curl\nGalera node is synced. 200\n\n" +
	"\n##### curl clustercheck db-node-2\n$ curl\nGalera node is synced. 200\n\n" +
	"\n##### curl clustercheck db-node-3\n$ curl\nGalera node is synced. 200\n\n"

func TestRender(t *testing.T) {
	c, err := ParseCapture(sampleCapture)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := "port {{.ListenPort}}\n{{.Initial}}{{sec \"audit probe\"}}{{sec \"audit probe\" \"keep_stderr\"}}{{filesec \"fixed.cfg\"}}{{sec \"check fixed\" \"strip_findings\"}}{{.Clustercheck}}\n"
	got, err := Render(tmpl, c)
	if err != nil {
		t.Fatal(err)
	}
	want := "port 42067\n" +
		"```haproxy\nglobal\n    maxconn 512\n```\n" +
		"```console\n$ haguard probe\n127.0.0.1:42067 mysql  FAIL 4/20\n[exit 1, 0.01s]\n```\n" +
		"```console\n$ haguard probe\n127.0.0.1:42067 mysql  FAIL 4/20\n[stderr]\ntime=2026-11-28T02:25:43Z level=INFO msg=x\n[exit 1, 0.01s]\n```\n" +
		"```haproxy\nbackend b\n    server s $RUN/s.sock\n```\n" +
		"```console\n$ haguard check\nFAILED\n[exit 1, 0.2s]\n```\n" +
		"$ curl\nGalera node is synced. 200\n$ curl\nGalera node is synced. 200\n$ curl\nGalera node is synced. 200\n"
	if got != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", got, want)
	}
	if _, err := Render(`{{sec "no such command"}}`, c); err == nil || !strings.Contains(err.Error(), "no such command") {
		t.Errorf("a section the capture lacks: %v", err)
	}
}

// What changes from run to run normalizes away; what a reader relies on
// does not.
func TestNormalize(t *testing.T) {
	same := [][2]string{
		{"68   1     current  0    -    2026-11-28T02:25:41Z  /system.slice/haproxy.service",
			"1234 1 current 0 - 2026-12-02T10:00:07Z /system.slice/haproxy.service"},
		{"id=20261128T022543.280Z-27cc before_sha256=701a193f111c04c4affad83784c61e6b3b2aee5e8b5081d3bb41bec89f3984a6",
			"id=20261202T100000.001Z-9f00 before_sha256=0000000000000000000000000000000000000000000000000000000000000000"},
		{"127.0.0.1:42067 mysql  OK 20/20  p50 2.9ms max 4.4ms", "127.0.0.1:3307 mysql OK 20/20 p50 850µs max 1.2s"},
		{"[exit 1, 0.07s]", "[exit 0, 10.53s]"},
		// A random suffix without a digit.
		{"haguard reload 20261202T091434.533Z-cdea", "haguard reload 20261202T091449.237Z-548a"},
		{"syntax is ok (156 ms)", "syntax is ok (1.5 s)"},
		{"generation 5 running (1 workers); no old workers draining; probes: 20/20 OK",
			"generation 5 running (1 workers); old generation draining (1 workers, since 2026-11-28T02:25:49Z); probes: 20/20 OK"},
	}
	for _, p := range same {
		if a, b := Normalize(p[0]), Normalize(p[1]); Diff(a, b) != "" {
			t.Errorf("%q and %q normalize apart: %v / %v", p[0], p[1], a, b)
		}
	}
	differ := [][2]string{
		{"2 current, 0 draining, 2 ghost", "2 current, 0 draining, 2 ghosts"},
		{"warning DB101: wait_timeout=10s < HA_idle=1m", "warning DB101: wait_timeout=10s < idle timeout 1m"},
		{"a\n\nb", "a\nb"},
	}
	for _, p := range differ {
		if Diff(Normalize(p[0]), Normalize(p[1])) == "" {
			t.Errorf("%q and %q normalize alike", p[0], p[1])
		}
	}
	// The settle line of the human report that only a still-draining old
	// generation prints.
	if a, b := Normalize("[x] generation 5 running (1 workers)\n    [x] old generation draining (1 workers, since 2026-11-28T02:25:49Z)\n[x] ghosts: 0"),
		Normalize("[x] generation 5 running (1 workers)\n[x] ghosts: 0"); Diff(a, b) != "" {
		t.Errorf("the draining line is not optional: %v / %v", a, b)
	}
	if got := Normalize("x\ntime=2026-11-28T02:25:43.198Z level=INFO msg=\"sent SIGTERM\" pid=74\ny"); strings.Join(got, "|") != "x|y" {
		t.Errorf("log lines kept: %q", got)
	}
}
