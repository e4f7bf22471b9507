package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/internal/testbed"
)

// defaultsBox is Debian's haproxy.service in the sandbox with a config
// in Debian's style (timeout connect 5000, no retries line, Debian's
// errorfiles) in front of a real MariaDB, a greeting TCP server and an
// HTTP server, and haguard.yaml with no probe targets: `haguard probe`
// runs inside the box as an operator runs it.
type defaultsBox struct {
	s                *testbed.Sandbox
	bin, yml, sock   string
	db, app, web     string // the fronts
	mariadb, greeter string // the servers
	webServer        string
}

func (b *defaultsBox) config(appServer, webServer string) string {
	return fmt.Sprintf(`global
	maxconn 256
	stats socket %s mode 600 level admin

defaults
	timeout connect 5000
	timeout client  50000
	timeout server  50000
	timeout check 1s
	errorfile 503 /etc/haproxy/errors/503.http

listen mysql
	mode tcp
	bind %s
	option mysql-check
	server db1 %s check inter 300ms

listen app
	mode tcp
	bind %s
	server a1 %s

listen web
	mode http
	bind %s
	server w1 %s check inter 300ms
`, b.sock, b.db, b.mariadb, b.app, appServer, b.web, webServer)
}

// probe runs `haguard probe --format json ARGS` in the box: the report
// and the exit code.
func (b *defaultsBox) probe(t *testing.T, args ...string) (Report, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append([]string{b.bin, "probe", "--config-file", b.yml, "--format", "json"}, args...)
	out, errs, err := b.s.Run(ctx, argv...)
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("haguard probe: %v", err)
	}
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("haguard probe (exit %d): %v\n%s\n%s", code, err, out, errs)
	}
	var sum []string
	for _, tr := range rep.Targets {
		sum = append(sum, fmt.Sprintf("%s %s %d/%d %v", tr.Target, tr.Kind, tr.OK, tr.AttemptsTotal, tr.Errors))
	}
	t.Logf("haguard probe %s: exit %d; %s; no server up %v", strings.Join(args, " "), code, strings.Join(sum, "; "), rep.NoServerUp)
	return rep, code, out
}

// reload installs cfg and reloads the unit, and waits for the new
// generation's worker.
func (b *defaultsBox) reload(t *testing.T, cfg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := b.showProc(ctx, t)
	b.s.WriteHAProxyConfig(t, cfg)
	if _, err := b.s.Systemctl(ctx, "reload", "haproxy.service"); err != nil {
		t.Fatalf("systemctl reload: %v", err)
	}
	for ctx.Err() == nil {
		sp := b.showProc(ctx, t)
		for _, w := range sp.Workers {
			if sp.Reloads > before.Reloads && w.Generation == sp.Reloads {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the reload's new worker never showed")
}

func (b *defaultsBox) showProc(ctx context.Context, t *testing.T) *master.ShowProc {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		out, err := b.s.MasterCLI(ctx, "show proc")
		if err == nil {
			if sp, perr := master.ParseShowProc(out); perr == nil {
				return sp
			} else {
				err = perr
			}
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("show proc: %v", last)
	return nil
}

func (b *defaultsBox) byAddr(rep Report, addr string) TargetReport {
	for _, tr := range rep.Targets {
		if tr.Target == addr {
			return tr
		}
	}
	return TargetReport{}
}

// TestSystemProbeDefaults is issue 15's acceptance for `haguard probe`,
// with haguard.yaml naming no probe target: a healthy setup exits 0 (MySQL
// through haproxy to a real MariaDB included); a ghost forwarding to a
// dead backend exits 1; a ghost forwarding to a working backend is still
// found by the sweep; a config whose only server is on a dead port exits 1
// for a mode tcp and for a mode http backend.
func TestSystemProbeDefaults(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	m := testbed.StartMariaDB(t, testbed.MariaDBOptions{})
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello") }))
	t.Cleanup(web.Close)
	s := testbed.Boot(t)
	b := &defaultsBox{s: s, bin: testbed.BuildHaguard(t), sock: filepath.Join(s.Dir(), "admin.sock"),
		mariadb: m.Addr(), greeter: testbed.TCPBackend(t), webServer: strings.TrimPrefix(web.URL, "http://")}
	b.db = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.app = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.web = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.yml = filepath.Join(s.Dir(), "haguard-defaults.yaml")
	if err := os.WriteFile(b.yml, []byte(fmt.Sprintf("haproxy:\n  configs: [%q]\n  stats_socket: %q\n", s.HAProxyConfig(), b.sock)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.StartHAProxy(t, b.config(b.greeter, b.webServer))

	t.Run("healthy: exit 0", func(t *testing.T) {
		var rep Report
		var code int
		for range 20 { // the checks run every 300 ms: give them (bounded) time to pass once
			if rep, code, _ = b.probe(t); code == 0 {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if code != 0 || !rep.OK || len(rep.Targets) != 3 || len(rep.NoServerUp) != 0 {
			t.Fatalf("exit %d, report %+v", code, rep)
		}
		if v := b.byAddr(rep, b.db).Attempts[0].ServerVersion; !strings.Contains(v, "MariaDB") || b.byAddr(rep, b.db).Kind != KindMySQL {
			t.Errorf("mysql through haproxy: kind %s, server %q", b.byAddr(rep, b.db).Kind, v)
		}
		if g := b.byAddr(rep, b.app).Attempts[0].Greeting; g != `hello\n` {
			t.Errorf("app greeting %q", g)
		}
	})

	t.Run("ghost forwarding to a dead backend: exit 1", func(t *testing.T) {
		ghost := s.StartGhost(t, testbed.TCPProxyConfig(b.app, testbed.DeadAddr(t)))
		rep, code, _ := b.probe(t)
		app := b.byAddr(rep, b.app)
		if code != 1 || app.OK == 0 || app.Fail == 0 || app.Errors[ReasonClosedByProxy] != app.Fail {
			t.Fatalf("exit %d; app %d/%d, errors %v: want exit 1 and a mix with %q", code, app.OK, app.AttemptsTotal, app.Errors, ReasonClosedByProxy)
		}
		if app.Listeners < 2 || app.AttemptsTotal < DefaultMinCount {
			t.Errorf("listeners %d, attempts %d", app.Listeners, app.AttemptsTotal)
		}
		ghost.Kill()
		<-ghost.Done()
	})

	t.Run("ghost forwarding to a working backend: the sweep finds it", func(t *testing.T) {
		ghost := s.StartGhost(t, testbed.TCPProxyConfig(b.app, b.greeter))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, _, err := s.Run(ctx, b.bin, "ghosts", "--config-file", b.yml)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "ghost") {
			t.Fatalf("haguard ghosts: %v\n%s", err, out)
		}
		t.Logf("haguard ghosts:\n%s", out)
		ghost.Kill()
		<-ghost.Done()
	})

	t.Run("only server on a dead port: exit 1 for mode tcp and for mode http", func(t *testing.T) {
		dead := testbed.DeadAddr(t)
		b.reload(t, b.config(dead, dead))
		rep, code, _ := b.probe(t, "--target", b.app)
		if app := b.byAddr(rep, b.app); code != 1 || app.OK != 0 || app.Errors[ReasonClosedByProxy] != app.AttemptsTotal {
			t.Errorf("mode tcp: exit %d, errors %v", code, app.Errors)
		}
		// The web server has a check: once it marked the server DOWN,
		// haproxy answers 503 at once, and the backend has no server UP.
		var webRep TargetReport
		for range 20 {
			if rep, code, _ = b.probe(t, "--target", b.web); len(rep.NoServerUp) > 0 {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		webRep = b.byAddr(rep, b.web)
		if code != 1 || webRep.OK != 0 || webRep.Errors["haproxy 503"] != webRep.AttemptsTotal {
			t.Errorf("mode http: exit %d, errors %v", code, webRep.Errors)
		}
		if len(rep.NoServerUp) != 1 || rep.NoServerUp[0].Backend != "web" {
			t.Errorf("no server up %+v, want backend web", rep.NoServerUp)
		}
		b.reload(t, b.config(b.greeter, b.webServer))
	})
}
