package probe

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/showstat-haproxy-2.6.csv from a live haproxy")

// runHAProxy starts `haproxy -db -f cfg` from a fresh directory and waits
// until addr accepts connections. The process is killed when t ends.
func runHAProxy(t testing.TB, cfg, addr string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(testbed.HAProxyBin(), "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	testbed.RunHAProxy(t, path, "haproxy for agent/probe tests", addr)
	return dir
}

func TestIdleHoldThroughHAProxyCut(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	backend := startFakeMySQL(t, fakeHandshake)
	front := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	runHAProxy(t, fmt.Sprintf(`global
    maxconn 100
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 5s
listen db
    bind %s
    server fake %s
`, front, backend), front)

	rep := Run(context.Background(), []Target{{Address: front, Kind: KindIdleHold, Over: KindMySQL, Idle: 15 * time.Second}},
		Options{Timeout: 3 * time.Second})
	a := rep.Targets[0].Attempts[0]
	if rep.OK || a.Idle == nil || !a.Idle.Closed {
		t.Fatalf("want a cut, got %+v idle %+v", a, a.Idle)
	}
	if a.ServerVersion != fakeVersion {
		t.Errorf("handshake through haproxy: version %q", a.ServerVersion)
	}
	// A behaviour check, not a speed target: the cut is haproxy's
	// `timeout server 5s`, not the 15 s idle time nor the fake server.
	if got := a.Idle.ClosedAfterMS; got < 4000 || got > 7000 {
		t.Fatalf("cut after %.0f ms, want about 5000 (timeout server 5s)", got)
	}
	t.Logf("cut after %.0f ms (%s), error %q", a.Idle.ClosedAfterMS, a.Idle.How, a.Error)
}

func TestMySQLThroughHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	good := startFakeMySQL(t, fakeHandshake)
	full := startFakeMySQL(t, fakeTooMany)
	frontGood := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	frontFull := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	frontDead := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	runHAProxy(t, fmt.Sprintf(`defaults
    mode tcp
    retries 0
    timeout connect 500ms
    timeout client 10s
    timeout server 10s
listen good
    bind %s
    server s %s
listen full
    bind %s
    server s %s
listen dead
    bind %s
    server s %s
`, frontGood, good, frontFull, full, frontDead, deadAddr(t)), frontDead)
	rep := Run(context.Background(), []Target{
		{Address: frontGood, Kind: KindMySQL},
		{Address: frontFull, Kind: KindMySQL, Count: 4},
		{Address: frontDead, Kind: KindMySQL, Count: 4},
	}, Options{Timeout: 3 * time.Second})
	if g := rep.Targets[0]; g.OK != 20 || g.Fail != 0 {
		t.Errorf("good path: %d/%d OK, errors %v", g.OK, g.AttemptsTotal, g.Errors)
	}
	if f := rep.Targets[1]; f.Errors["mysql error 1040"] != 4 {
		t.Errorf("too many connections through haproxy: errors %v", f.Errors)
	}
	// haproxy accepts, cannot reach the server, and closes: a failure.
	if d := rep.Targets[2]; d.Fail != 4 || d.Errors[ReasonClosedEarly] != 4 {
		t.Errorf("dead backend: fail %d errors %v, want 4 %q", d.Fail, d.Errors, ReasonClosedEarly)
	}
}

func TestStatsFromHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	mysqlUp := startFakeMySQL(t, fakeHandshake)
	httpDown := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "Galera node is not synced.", http.StatusServiceUnavailable)
	}))
	t.Cleanup(httpDown.Close)
	httpUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Galera node is synced.")
	}))
	t.Cleanup(httpUp.Close)
	tcpUp := startEcho(t)
	dead := deadAddr(t)
	front := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	sock := filepath.Join(t.TempDir(), "admin.sock")
	runHAProxy(t, fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    mode tcp
    timeout connect 500ms
    timeout client 10s
    timeout server 10s
    timeout check 500ms
    default-server inter 100ms rise 1 fall 1
listen galera
    bind %s
    option mysql-check
    server db1 %s check
    server db2 %s check
backend clustercheck
    option httpchk GET /
    server node1 %s check
    server node2 %s check
backend plain
    server up %s check
    server nocheck %s
backend alldown
    server gone %s check
`, sock, front, mysqlUp, dead,
		strings.TrimPrefix(httpUp.URL, "http://"), strings.TrimPrefix(httpDown.URL, "http://"),
		tcpUp, tcpUp, dead), front)

	want := map[string][2]string{
		"galera/db1":         {"UP", "L7OK"},
		"galera/db2":         {"DOWN", "L4CON"},
		"clustercheck/node1": {"UP", "L7OK"},
		"clustercheck/node2": {"DOWN", "L7STS"},
		"plain/up":           {"UP", "L4OK"},
		"plain/nocheck":      {"no check", ""},
		"alldown/gone":       {"DOWN", "L4CON"},
	}
	var h Health
	var raw string
	var err error
	for i := 0; i < 50; i++ { // checks run every 100 ms; give them up to 5 s to settle
		// The frontend answering (runHAProxy) does not mean the stats
		// socket exists yet: 3.0 has been seen to bind it a moment later.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		h, err = ReadStats(ctx, sock)
		cancel()
		if err == nil {
			raw = rawShowStat(t, sock)
			if matches(h, want) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || !matches(h, want) {
		t.Fatalf("servers = %+v (%v)\nwant %v", h.Servers, err, want)
	}
	var down []string
	for _, b := range h.BackendsDown {
		down = append(down, fmt.Sprintf("%s:%s:%v:%d", b.Backend, b.Status, b.ServersDown, b.ServersUp))
	}
	wantDown := "alldown:DOWN:[gone]:0 clustercheck:UP:[node2]:1 galera:UP:[db2]:1"
	if got := strings.Join(down, " "); got != wantDown {
		t.Errorf("backends down = %q, want %q", got, wantDown)
	}
	if *updateGolden {
		if err := os.WriteFile(filepath.Join("testdata", "showstat-haproxy-2.6.csv"), []byte(raw), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func matches(h Health, want map[string][2]string) bool {
	if len(h.Servers) != len(want) {
		return false
	}
	for _, s := range h.Servers {
		w, ok := want[s.Backend+"/"+s.Server]
		if !ok || s.Status != w[0] || s.CheckStatus != w[1] {
			return false
		}
	}
	return true
}

func rawShowStat(t *testing.T, sock string) string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprint(c, "show stat\n")
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
