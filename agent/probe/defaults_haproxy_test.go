package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/validate"
)

// targetsOf is the default path: the binds of the config haproxy runs,
// as the reload and `haguard probe` infer them.
func targetsOf(t *testing.T, dir string) []Target {
	t.Helper()
	vc, err := validate.Parse(filepath.Join(dir, "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	return InferTargets(Listeners(vc), "")
}

func byAddress(rep Report) map[string]TargetReport {
	m := map[string]TargetReport{}
	for _, tr := range rep.Targets {
		m[tr.Target] = tr
	}
	return m
}

// TestDefaultsThroughHAProxy: with no option set, probes through a real
// haproxy fail where no server answers (a dead server with haproxy's
// default retries, the same with a check that marked it DOWN, mode http)
// and pass where one does (a greeting server, a silent one, http).
func TestDefaultsThroughHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello") }))
	t.Cleanup(web.Close)
	dead, greeter, silent := deadAddr(t), testbed.TCPBackend(t), startEcho(t)
	addr := map[string]string{}
	for _, name := range []string{"tcp_dead", "tcp_dead_checked", "http_dead", "tcp_greets", "tcp_silent", "http_good"} {
		addr[name] = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	}
	sock := filepath.Join(t.TempDir(), "admin.sock")
	// Debian's defaults: timeout connect 5000 and no retries line (3).
	dir := runHAProxy(t, fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    timeout connect 5000
    timeout client 10s
    timeout server 10s
    timeout check 500ms
listen tcp_dead
    mode tcp
    bind %s
    server s1 %s
listen tcp_dead_checked
    mode tcp
    bind %s
    server s1 %s check inter 200ms
listen http_dead
    mode http
    bind %s
    server s1 %s
listen tcp_greets
    mode tcp
    bind %s
    server s1 %s
listen tcp_silent
    mode tcp
    bind %s
    server s1 %s
listen http_good
    mode http
    bind %s
    server s1 %s
`, sock, addr["tcp_dead"], dead, addr["tcp_dead_checked"], dead, addr["http_dead"], dead,
		addr["tcp_greets"], greeter, addr["tcp_silent"], silent, addr["http_good"], strings.TrimPrefix(web.URL, "http://")), addr["http_good"])
	targets := targetsOf(t, dir)
	for i := range targets {
		targets[i].Count = 4
	}
	time.Sleep(500 * time.Millisecond) // let the check mark tcp_dead_checked's server DOWN
	start := time.Now()
	rep, err := WithHealth(context.Background(), targets, Options{Timeout: 2 * time.Second, Concurrency: 24}, sock, true)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	got := byAddress(rep)
	want := map[string]string{
		"tcp_dead":         "0 " + ReasonClosedByProxy,
		"tcp_dead_checked": "0 " + ReasonClosedByProxy,
		"http_dead":        "0 haproxy 503",
		"tcp_greets":       "4 ",
		"tcp_silent":       "4 ",
		"http_good":        "4 ",
	}
	for name, w := range want {
		tr := got[addr[name]]
		var reasons []string
		for r := range tr.Errors {
			reasons = append(reasons, r)
		}
		if g := fmt.Sprintf("%d %s", tr.OK, strings.Join(reasons, ",")); g != w {
			t.Errorf("%s: %s (errors %v), want %s", name, g, tr.Errors, w)
		}
		t.Logf("%-16s %s OK %d/%d errors %v linger %.0fms p50 %.1fms max %.1fms", name, tr.Kind, tr.OK, tr.AttemptsTotal, tr.Errors,
			tr.LingerMS, tr.LatencyMS.P50, tr.LatencyMS.Max)
	}
	if g := got[addr["tcp_greets"]].Attempts[0].Greeting; g != `hello\n` {
		t.Errorf("greeting %q", g)
	}
	// haproxy gives up on the unchecked dead server after its 3 retries
	// (about 3 s); the checked one is DOWN, so it closes at once.
	if d := got[addr["tcp_dead"]].LatencyMS.P50; d < 2500 || d > 3500 {
		t.Errorf("tcp_dead closed after %.0f ms, want about 3000 (retries 3 x 1 s)", d)
	}
	if d := got[addr["tcp_dead_checked"]].LatencyMS.Max; d > 200 {
		t.Errorf("tcp_dead_checked closed after %.0f ms, want at once (server DOWN)", d)
	}
	if rep.OK || len(rep.NoServerUp) != 1 || rep.NoServerUp[0].Backend != "tcp_dead_checked" {
		t.Errorf("ok %v, no server up %+v: want tcp_dead_checked (the unchecked ones are 'no check')", rep.OK, rep.NoServerUp)
	}
	t.Logf("whole run: %s", took.Round(time.Millisecond))
}

// TestGhostByHandThroughHAProxy is seed 003 on the host: a second
// haproxy on the same port (SO_REUSEPORT) with an old config. Forwarding
// to a dead server, it closes what it accepts; forwarding to a server that
// never answers, it leaves silent the attempts the kernel hands it, while
// the real one greets. Default targets from the real config see both.
func TestGhostByHandThroughHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	front := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	dir := runHAProxy(t, testbed.TCPProxyConfig(front, testbed.TCPBackend(t)), front)
	targets := targetsOf(t, dir)
	if len(targets) != 1 || targets[0].Kind != KindTCP {
		t.Fatalf("targets %+v", targets)
	}
	targets[0].Count = 40

	check := func(t *testing.T, wantReason string) {
		t.Helper()
		tr := Run(context.Background(), targets, Options{Timeout: 2 * time.Second}).Targets[0]
		t.Logf("with ghost: OK %d / %d, errors %v, linger %.0f ms", tr.OK, tr.AttemptsTotal, tr.Errors, tr.LingerMS)
		if tr.OK == 0 || tr.Fail == 0 || tr.Errors[wantReason] != tr.Fail {
			t.Fatalf("want a mix of OK and %q: OK %d errors %v", wantReason, tr.OK, tr.Errors)
		}
	}
	t.Run("ghost to a dead server", func(t *testing.T) {
		ghostDir := t.TempDir()
		cfg := testbed.TCPProxyConfig(front, deadAddr(t))
		if err := os.WriteFile(filepath.Join(ghostDir, "haproxy.cfg"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		stop := startGhostByHand(t, filepath.Join(ghostDir, "haproxy.cfg"))
		check(t, ReasonClosedByProxy)
		stop()
	})
	t.Run("ghost to a server that never answers", func(t *testing.T) {
		ghostDir := t.TempDir()
		cfg := testbed.TCPProxyConfig(front, startFakeMySQL(t, fakeSilent))
		if err := os.WriteFile(filepath.Join(ghostDir, "haproxy.cfg"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		stop := startGhostByHand(t, filepath.Join(ghostDir, "haproxy.cfg"))
		check(t, ReasonNoGreeting)
		stop()
	})
	if tr := Run(context.Background(), targets, Options{Timeout: 2 * time.Second}).Targets[0]; tr.OK != tr.AttemptsTotal {
		t.Fatalf("ghosts gone: OK %d/%d, errors %v", tr.OK, tr.AttemptsTotal, tr.Errors)
	}
}

// startGhostByHand starts `haproxy -db -f cfg` next to the one already on
// the same port and waits until it holds its listening socket. stop kills
// it (by its PID) and waits; it also runs when t ends.
func startGhostByHand(t *testing.T, cfg string) (stop func()) {
	t.Helper()
	cmd := exec.Command(testbed.HAProxyBin(), "-db", "-f", cfg)
	cmd.Dir = filepath.Dir(cfg)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	untrack := testbed.Track(t, cmd.Process.Pid, "ghost haproxy for agent/probe tests")
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			untrack()
		})
	}
	t.Cleanup(stop)
	for i := 0; i < 200; i++ {
		if n, _ := testbed.ListeningSockets(cmd.Process.Pid); n > 0 {
			return stop
		}
		select {
		case <-done:
			t.Fatalf("ghost haproxy exited: %s", out.String())
		case <-time.After(25 * time.Millisecond):
		}
	}
	t.Fatalf("ghost haproxy not listening after 5 s: %s", out.String())
	return stop
}
