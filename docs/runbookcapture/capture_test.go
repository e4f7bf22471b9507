package runbookcapture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

func TestMain(m *testing.M) { os.Exit(testbed.RunMain(m)) }

func seedConfig(listen string, servers []string, comment2 bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n\tmaxconn 512\n\ndefaults\n\tmode tcp\n\ttimeout connect 5s\n\ttimeout client 1m\n\ttimeout server 1m\n\nfrontend app_in\n\tbind %s\n\tdefault_backend app-cluster\n\nbackend app-cluster\n\tbalance leastconn\n\toption mysql-check\n", listen)
	for i, s := range servers {
		pre := "\t"
		if comment2 && i == 1 {
			pre = "#\t"
		}
		fmt.Fprintf(&b, "%sserver db-node-%d %s check inter 2s\n", pre, i+1, s)
	}
	return b.String()
}

func fixedConfig(listen, stats string, servers, checks []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n\tmaxconn 512\n\thard-stop-after 30m\n\tstats socket %s mode 600 level admin\n\ndefaults\n\tmode tcp\n\ttimeout client 28800s\n\ttimeout server 28800s\n\ttimeout connect 5s\n\ttimeout check 10s\n\nfrontend app_in\n\tbind %s\n\tdefault_backend app-cluster\n\nbackend app-cluster\n\tbalance leastconn\n\toption tcpka\n\toption httpchk GET /\n", stats, listen)
	for i, s := range servers {
		_, port, _ := net.SplitHostPort(checks[i])
		fmt.Fprintf(&b, "\tserver db-node-%d %s check port %s inter 2s rise 2 fall 3 weight 1\n", i+1, s, port)
	}
	return b.String()
}

// TestRunbookIsTrue runs the runbook in the test bed (a 3-node Galera, a
// sandbox with haproxy.service and two ghosts, the real binary inside
// it), renders runbook.tmpl with the outputs, and compares the result
// with docs/runbook.md, both normalized (Normalize). When the binary's
// output changed, regenerate the page:
//
//	HAGUARD_RUNBOOK_UPDATE=1 HAGUARD_TIERS=system go test -count=1 -run TestRunbookIsTrue ./docs/runbookcapture/
//
// HAGUARD_RUNBOOK_OUT=FILE also keeps the raw capture, and
// HAGUARD_RUNBOOK_FROM=FILE renders a kept one instead of running the
// runbook again (to edit runbook.tmpl's prose).
func TestRunbookIsTrue(t *testing.T) {
	var raw string
	if from := os.Getenv("HAGUARD_RUNBOOK_FROM"); from != "" {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		raw = string(b)
	} else {
		testbed.Require(t, testbed.TierSystem)
		if bin := testbed.HAProxyBin(); bin != "/usr/sbin/haproxy" {
			// Not a missing part: the page shows Debian 12's haproxy, its
			// path and its words, and make test's first pass checks it.
			t.Skipf("docs/runbook.md documents Debian 12's /usr/sbin/haproxy; this pass runs %s (the Debian 12 pass checks the page)", bin)
		}
		raw = capture(t)
	}
	if out := os.Getenv("HAGUARD_RUNBOOK_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(raw), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := ParseCapture(raw)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("runbook.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Render(string(tmpl), c)
	if err != nil {
		t.Fatalf("render runbook.tmpl: %v", err)
	}
	const doc = "../runbook.md"
	if os.Getenv("HAGUARD_RUNBOOK_UPDATE") == "1" {
		if err := os.WriteFile(doc, []byte(fresh), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", doc)
		return
	}
	old, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(Normalize(string(old)), Normalize(fresh)); d != "" {
		t.Errorf("docs/runbook.md no longer shows what haguard prints: %s\nregenerate it with HAGUARD_RUNBOOK_UPDATE=1 (see the test's comment) and read the diff", d)
	}
}

// capture runs the runbook and returns its log (Capture's format).
func capture(t *testing.T) string {
	var log strings.Builder
	g := testbed.StartGalera(t, testbed.GaleraOptions{WaitTimeouts: []int{10, 10, 28800}})
	var servers []string
	for _, n := range g.Nodes() {
		servers = append(servers, n.Addr())
	}
	user, pass := g.Nodes()[0].User()
	puser, ppass := g.Nodes()[0].ProbeUser()
	s := testbed.Boot(t)
	bin := testbed.BuildHaguard(t)
	dir := s.Dir()
	listen := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	stats := filepath.Join(dir, "admin.sock")
	s.StartHAProxy(t, seedConfig(listen, servers, false))
	// The seed's haproxy has run its config for months: date the file
	// back, so that the first reload adopts it as known-good whatever
	// the moment between writing it and starting haproxy (reload/adopt.go).
	old := time.Now().Add(-90 * 24 * time.Hour)
	if err := os.Chtimes(s.HAProxyConfig(), old, old); err != nil {
		t.Fatal(err)
	}
	ghostCfg := testbed.TCPProxyConfig(listen, testbed.DeadAddr(t))
	s.StartGhost(t, ghostCfg)
	s.StartGhost(t, ghostCfg)
	yaml := filepath.Join(dir, "haguard.yaml")
	// The fixed config's admin socket is in the run directory; on a host
	// it is /run/haproxy/admin.sock, which the candidate policy allows.
	y := fmt.Sprintf("haproxy:\n  configs: [%q]\n  stats_socket: %q\nstate_dir: %q\nreload:\n  min_interval: 0s\npolicy:\n  runtime_paths: [%q]\nfacts:\n  mode: live\n  db:\n    user: %q\n    password: %q\nprobe:\n  count: 20\n  mysql:\n    user: %q\n    password: %q\n  targets:\n    - address: %q\n      kind: mysql\n",
		s.HAProxyConfig(), stats, filepath.Join(dir, "state"), dir, user, pass, puser, ppass, listen)
	if err := os.WriteFile(yaml, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&log, "RUN DIR %s\nLISTEN %s\nSERVERS %v\nYAML:\n%s\nCONFIG:\n%s\n", dir, listen, servers, y, seedConfig(listen, servers, false))
	hg := func(title string, args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		argv := append([]string{bin, "--config-file", yaml}, args...)
		start := time.Now()
		out, errOut, err := s.Run(ctx, argv...)
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v", err)
		}
		fmt.Fprintf(&log, "\n##### %s\n$ haguard %s\n%s", title, strings.Join(args, " "), out)
		if errOut != "" {
			fmt.Fprintf(&log, "[stderr]\n%s", errOut)
		}
		fmt.Fprintf(&log, "[exit %d, %.2fs]\n", code, time.Since(start).Seconds())
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&log, "\nFILE %s:\n%s\n", name, body)
		return p
	}

	hg("audit ghosts", "ghosts")
	hg("audit probe", "probe")
	hg("audit check", "check")
	hg("ghosts kill", "ghosts", "--kill")
	hg("probe after kill", "probe")
	hg("phase2 too early", "reload", "--candidate", write("no-node2.cfg", seedConfig(listen, servers, true)), "--reason", "isolate db-node-2 for SST")
	ctx := context.Background()
	for _, n := range g.Nodes()[:2] {
		for _, q := range []string{"SET GLOBAL wait_timeout = 28800", "SET GLOBAL interactive_timeout = 28800"} {
			if err := n.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	hg("check after db fix", "check")
	// Phase 3: haguard clustercheck on each node.
	var checks []string
	for i, n := range g.Nodes() {
		addr := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
		checks = append(checks, addr)
		cmd := exec.Command(bin, "clustercheck", "--listen", addr)
		cmd.Env = append(os.Environ(), "HAGUARD_CLUSTERCHECK_DSN="+n.ProbeDSN(""))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		untrack := testbed.Track(t, cmd.Process.Pid, "clustercheck")
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			untrack()
			fmt.Fprintf(&log, "clustercheck %d stderr: %s\n", i, stderr.String())
		})
	}
	time.Sleep(time.Second)
	for i, a := range checks {
		out, _ := exec.Command("curl", "-s", "-w", " %{http_code}", "http://"+a+"/").CombinedOutput()
		fmt.Fprintf(&log, "\n##### curl clustercheck db-node-%d\n$ curl -s -w ' %%{http_code}' http://%s/\n%s\n", i+1, a, out)
	}
	fixed := write("fixed.cfg", fixedConfig(listen, stats, servers, checks))
	hg("check fixed", "check", "-f", fixed)
	hg("reload fixed", "reload", "--candidate", fixed, "--reason", "galera-aware checks, aligned timeouts")
	hg("probe fixed", "probe")
	iso := strings.Replace(fixedConfig(listen, stats, servers, checks), "\tserver db-node-2", "#\tserver db-node-2", 1)
	hg("isolate node2", "reload", "--candidate", write("isolate-node2.cfg", iso), "--reason", "isolate db-node-2 for SST")
	hg("probe isolated", "probe")
	hg("rejoin node2", "reload", "--candidate", fixed, "--reason", "db-node-2 back after SST")
	deadBackend := strings.Replace(fixedConfig(listen, stats, servers, checks), servers[0], testbed.DeadAddr(t), -1)
	deadBackend = strings.Replace(deadBackend, servers[1], testbed.DeadAddr(t), -1)
	deadBackend = strings.Replace(deadBackend, servers[2], testbed.DeadAddr(t), -1)
	hg("broken traffic", "reload", "--candidate", write("wrong-ports.cfg", deadBackend), "--reason", "typo in the server ports")
	hg("probe after rollback", "probe")
	hg("status", "status")
	hg("history final", "history")
	hg("ghosts final", "ghosts")
	// Refused candidate.
	bad := write("typo.cfg", strings.Replace(fixedConfig(listen, stats, servers, checks), "balance leastconn", "balance leastconn\n\tserver-typo x", 1))
	hg("refused", "reload", "--candidate", bad)
	hg("json reload", "--format", "json", "reload", "--candidate", filepath.Join(dir, "isolate-node2.cfg"), "--reason", "isolate db-node-2 for SST")
	hg("json history", "--format", "json", "history")
	return log.String()
}
