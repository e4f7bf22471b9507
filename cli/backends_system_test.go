package cli

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// Tier 3: a candidate that points a server at a dead port is rolled back
// even though every probe through the listener passes (haproxy sends the
// traffic to the server still UP): the server was UP before the reload.
// With reload.backends: any-up the same candidate commits, and the dead
// server is reported.
func TestSystemBackendsVerdict(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	for _, mode := range []string{"tcp", "http"} {
		t.Run(mode, func(t *testing.T) {
			var a, b string
			check := ""
			if mode == "http" {
				for _, p := range []*string{&a, &b} {
					srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }))
					t.Cleanup(srv.Close)
					*p = strings.TrimPrefix(srv.URL, "http://")
				}
				check = "    option httpchk GET /health\n"
			} else {
				a, b = testbed.TCPBackend(t), testbed.TCPBackend(t)
			}
			box := &setBox{s: testbed.Boot(t), bin: testbed.BuildHaguard(t)}
			box.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
			sock := filepath.Join(box.s.Dir(), "admin.sock")
			cfg := func(s2 string) string {
				return fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    mode %s
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    retries 2
    option redispatch
frontend fe
    bind %s
    default_backend be
backend be
%s    default-server check inter 300ms
    server s1 %s
    server s2 %s
`, sock, mode, box.listen, check, a, s2)
			}
			// The only server first: a host that haguard never reloaded.
			only := func(s1 string) string {
				c := cfg("")
				return c[:strings.Index(c, "    server s1")] + "    server s1 " + s1 + "\n"
			}
			box.s.StartHAProxy(t, only(a))
			box.state = filepath.Join(box.s.Dir(), "state")
			box.yaml = filepath.Join(box.s.Dir(), "haguard.yaml")
			yaml := func(policy string) {
				box.s.WriteFiles(t, map[string]string{box.yaml: fmt.Sprintf(
					"state_dir: %q\nreload:\n  settle_timeout: 10s\n  min_interval: 0s\n  backends: %s\nprobe:\n  count: 6\n  timeout: 2s\n", box.state, policy)})
			}
			yaml("previously-up")
			dead := testbed.DeadAddr(t)
			cand := filepath.Join(box.s.Dir(), "only-dead.cfg")
			box.s.WriteFiles(t, map[string]string{cand: only(dead)})
			if res, code := box.reload(t, "--candidate", cand); code != exitNegative || !res.RolledBack {
				t.Fatalf("the only server moved to a dead port: exit %d rolled back %v, want 1 and a rollback", code, res.RolledBack)
			}
			if box.read(t, box.s.HAProxyConfig()) != only(a) {
				t.Fatal("the config on disk is not the one before the reload")
			}
			if mode == "http" {
				if body := box.get(t); !strings.Contains(body, "200 OK") {
					t.Fatalf("after the rollback haproxy answers %q", body)
				}
			} else if ok, _ := testbed.ConnectLoop(t.Context(), box.listen, 3, testbed.Greeting); ok != 3 {
				t.Fatal("after the rollback haproxy does not serve")
			}

			// Two servers: probes pass through the one still UP.
			two := filepath.Join(box.s.Dir(), "two.cfg")
			box.s.WriteFiles(t, map[string]string{two: cfg(b)})
			if _, code := box.reload(t, "--candidate", two); code != exitOK {
				t.Fatalf("two servers: exit %d", code)
			}
			cand = filepath.Join(box.s.Dir(), "typo.cfg")
			box.s.WriteFiles(t, map[string]string{cand: cfg(dead)})

			res, code := box.reload(t, "--candidate", cand)
			if code != exitNegative || !res.RolledBack {
				t.Fatalf("exit %d rolled back %v, want 1 and a rollback", code, res.RolledBack)
			}
			if res.Probes.Failed != 0 {
				t.Errorf("%d probes failed: the verdict must come from the servers here", res.Probes.Failed)
			}
			if msg := failedStage(res, reload.StageProbe); !strings.Contains(msg, "be/s2 was UP") || !strings.Contains(msg, "now DOWN L4CON") {
				t.Fatalf("probe stage error %q, want be/s2 named", msg)
			}
			if box.read(t, box.s.HAProxyConfig()) != cfg(b) {
				t.Fatal("the config on disk is not the one before the reload")
			}

			yaml("any-up")
			res, code = box.reload(t, "--candidate", cand)
			if code != exitOK || !res.OK {
				t.Fatalf("any-up: exit %d, want 0", code)
			}
			var s2 *reload.ServerHealth
			for i, s := range res.Probes.Servers {
				if s.Server == "s2" {
					s2 = &res.Probes.Servers[i]
				}
			}
			if s2 == nil || s2.Status != "DOWN" || s2.Check == "INI" {
				t.Fatalf("any-up: s2 is %+v, want DOWN after its first check", s2)
			}
		})
	}
}

func failedStage(res reload.Result, name string) string {
	for _, s := range res.Stages {
		if s.Name == name && !s.OK {
			return s.Error
		}
	}
	return ""
}

// Tier 3, default haguard.yaml (no probe targets): the servers greeted
// before the reload, and the candidate points them at a listener that
// accepts and stays silent (a wrong port where something else listens).
// Health checks pass (L4OK) and no connection is closed; only the
// greeting learned before the reload tells, and the reload rolls back.
func TestSystemProbeHoldsTheGreeting(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	greeter := testbed.TCPBackend(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	box := &setBox{s: testbed.Boot(t), bin: testbed.BuildHaguard(t)}
	box.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	box.state = filepath.Join(box.s.Dir(), "state")
	box.yaml = filepath.Join(box.s.Dir(), "haguard.yaml")
	box.writeYAML(t, "")
	good := testbed.TCPProxyConfig(box.listen, greeter)
	box.s.StartHAProxy(t, good)
	cand := filepath.Join(box.s.Dir(), "wrong-port.cfg")
	box.s.WriteFiles(t, map[string]string{cand: testbed.TCPProxyConfig(box.listen, silent.Addr().String())})

	res, code := box.reload(t, "--candidate", cand)
	if code != exitNegative || !res.RolledBack {
		t.Fatalf("exit %d rolled back %v, want 1 and a rollback", code, res.RolledBack)
	}
	reasons := map[string]int{}
	for _, a := range res.Probes.Attempts {
		if !a.OK {
			reasons[a.Reason]++
		}
	}
	if res.Probes.Failed == 0 || reasons["no greeting"] != res.Probes.Failed {
		t.Fatalf("failed probes by reason %v (of %d failed), want every one 'no greeting'", reasons, res.Probes.Failed)
	}
	if box.read(t, box.s.HAProxyConfig()) != good {
		t.Fatal("the config on disk is not the one before the reload")
	}
}
