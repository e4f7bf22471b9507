package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/probe"
	"github.com/haguard/haguard/internal/testbed"
)

// TestProbeThroughRealHAProxy is the default path end to end on the host:
// `haguard probe -f cfg` infers an http and a mysql target from a real
// haproxy's config, probes through it, and reads its `show stat`.
func TestProbeThroughRealHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello") }))
	t.Cleanup(web.Close)
	db := fakeMySQLGreeter(t)
	frontWeb := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	frontDB := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 1s
listen web
    mode http
    bind %s
    option httpchk GET /
    server s1 %s check inter 200ms
listen db
    mode tcp
    bind %s
    option mysql-check
    server s1 %s check inter 200ms
`, sock, frontWeb, strings.TrimPrefix(web.URL, "http://"), frontDB, db)
	env := probeEnv(t, cfg, "")
	cfgPath := filepath.Join(filepath.Dir(env[1]), "haproxy.cfg")

	testbed.RunHAProxy(t, cfgPath, "haproxy for cmd/haguard probe tests", frontWeb, frontDB)

	var rep probe.Report
	for i := 0; i < 25; i++ { // checks every 200 ms: wait (bounded) until both are L7OK
		code, out, errs := runProbeCmd(t, env, "-f", cfgPath, "--stats-socket", sock, "--count", "5", "--format", "json")
		if code != exitOK {
			t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
		}
		rep = probe.Report{}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Servers) == 2 && rep.Servers[0].CheckStatus == "L7OK" && rep.Servers[1].CheckStatus == "L7OK" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var got []string
	for _, tr := range rep.Targets {
		got = append(got, fmt.Sprintf("%s %s %d/%d", tr.Target, tr.Kind, tr.OK, tr.AttemptsTotal))
	}
	want := []string{frontWeb + " http 5/5", frontDB + " mysql 5/5"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("targets %v, want %v", got, want)
	}
	if rep.Targets[0].Attempts[0].HTTPStatus != 200 || rep.Targets[1].Attempts[0].ServerVersion != "10.11.6-MariaDB-test" {
		t.Errorf("attempt details: %+v / %+v", rep.Targets[0].Attempts[0], rep.Targets[1].Attempts[0])
	}
	if len(rep.Servers) != 2 || rep.Servers[0].CheckStatus != "L7OK" || rep.Servers[1].CheckStatus != "L7OK" || len(rep.BackendsDown) != 0 {
		t.Fatalf("servers %+v, backends down %+v", rep.Servers, rep.BackendsDown)
	}
}

// TestProbeFailsWithoutServerThroughRealHAProxy: a config whose only
// server is on a dead port, in mode tcp and in mode http, with haproxy's
// default retries and no probe option: `haguard probe` exits 1 and says
// why, with one count per reason.
func TestProbeFailsWithoutServerThroughRealHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	dead := deadTCPAddr(t)
	frontTCP := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	frontHTTP := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    timeout connect 5000
    timeout client 10s
    timeout server 10s
listen tcp_app
    mode tcp
    bind %s
    server s1 %s
listen web
    mode http
    bind %s
    server s1 %s
`, sock, frontTCP, dead, frontHTTP, dead)
	env := probeEnv(t, cfg, sock)
	cfgPath := filepath.Join(filepath.Dir(env[1]), "haproxy.cfg")
	testbed.RunHAProxy(t, cfgPath, "haproxy for cmd/haguard probe tests", frontTCP, frontHTTP)

	code, out, errs := runProbeCmd(t, env, "--count", "3")
	if code != exitNegative {
		t.Fatalf("exit %d, want %d:\n%s\n%s", code, exitNegative, out, errs)
	}
	for _, want := range []string{
		frontTCP + " tcp    OK 0/3 (3 failed: 3 × closed by proxy after accept)  linger 3.30s",
		frontHTTP + " http   OK 0/3 (3 failed: 3 × haproxy 503)",
		"first error: haproxy 503: haproxy answered 503 Service Unavailable itself: no server is available",
		"probe FAILED: OK 0/6 (6 failed: 3 × closed by proxy after accept, 3 × haproxy 503)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
