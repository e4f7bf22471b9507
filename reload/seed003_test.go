package reload_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// seed003Config is the incident's config on loopback: timeouts of 1m and a
// mysql-check that cannot see Galera's state.
func seed003Config(listen string, servers []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
	maxconn 512

defaults
	mode tcp
	timeout connect 5s
	timeout client 1m
	timeout server 1m

frontend app_in
	bind %s
	default_backend app-cluster

backend app-cluster
	balance leastconn
	option mysql-check
`, listen)
	for i, s := range servers {
		fmt.Fprintf(&b, "\tserver db-node-%d %s check inter 2s\n", i+1, s)
	}
	return b.String()
}

// seed003Fixed is the runbook's final config: long equal timeouts, tcpka,
// httpchk against clustercheck.
func seed003Fixed(listen, stats string, servers, checks []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
	maxconn 512
	hard-stop-after 30m
	stats socket %s mode 600 level admin

defaults
	mode tcp
	timeout client 28800s
	timeout server 28800s
	timeout connect 5s
	timeout check 10s

frontend app_in
	bind %s
	default_backend app-cluster

backend app-cluster
	balance leastconn
	option tcpka
	option httpchk GET /
`, stats, listen)
	for i, s := range servers {
		_, port, _ := net.SplitHostPort(checks[i])
		fmt.Fprintf(&b, "\tserver db-node-%d %s check port %s inter 2s rise 2 fall 3 weight 1\n", i+1, s, port)
	}
	return b.String()
}

func TestSystemSeed003EndToEnd(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	g := testbed.StartGalera(t, testbed.GaleraOptions{WaitTimeouts: []int{10, 10, 28800}, Clustercheck: true})
	var servers, checks []string
	for i, n := range g.Nodes() {
		servers = append(servers, n.Addr())
		checks = append(checks, g.ClustercheckAddr(i))
	}
	user, pass := g.Nodes()[0].User()
	puser, ppass := g.Nodes()[0].ProbeUser()

	b := &box{s: testbed.Boot(t), bin: testbed.BuildHaguard(t)}
	b.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.good = seed003Config(b.listen, servers)
	b.s.StartHAProxy(t, b.good)
	// Two ghosts from a forgotten manual start: the old config, a dead backend.
	ghostCfg := testbed.TCPProxyConfig(b.listen, testbed.DeadAddr(t))
	b.s.StartGhost(t, ghostCfg)
	b.s.StartGhost(t, ghostCfg)

	b.state = filepath.Join(b.s.Dir(), "state")
	b.yaml = filepath.Join(b.s.Dir(), "haguard.yaml")
	stats := filepath.Join(b.s.Dir(), "admin.sock")
	y := fmt.Sprintf(`haproxy:
  configs: [%q]
  stats_socket: %q
state_dir: %q
policy:
  # The fixed candidate adds an admin socket in the test's directory.
  runtime_paths: [%q]
reload:
  settle_timeout: 15s
  min_interval: 0s
facts:
  mode: live
  db:
    user: %q
    password: %q
probe:
  count: 20
  timeout: 3s
  mysql:
    user: %q
    password: %q
  targets:
    - address: %q
      kind: mysql
`, b.s.HAProxyConfig(), stats, b.state, b.s.Dir(), user, pass, puser, ppass, b.listen)
	if err := os.WriteFile(b.yaml, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}

	// haguard check --facts live flags the divergent wait_timeout and the mysql-check.
	out, errOut, code := b.haguard(t, nil, "--format", "json", "check", "--facts", "live")
	var rep struct {
		Findings []struct{ Rule, Severity, Message string } `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("check JSON: %v\n%s\n%s", err, out, errOut)
	}
	rules := map[string]string{}
	for _, f := range rep.Findings {
		rules[f.Rule] = f.Severity
		t.Logf("check: %s %s %s", f.Rule, f.Severity, f.Message)
	}
	if code != 1 || rules["DB102"] != "error" || rules["HA011"] != "error" {
		t.Fatalf("check --facts live: exit %d, findings %v", code, rules)
	}

	// The runbook's fix on the DB side, as in the seed: align wait_timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range g.Nodes()[:2] {
		for _, q := range []string{"SET GLOBAL wait_timeout = 28800", "SET GLOBAL interactive_timeout = 28800"} {
			if err := n.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}

	fixed := b.candidate(t, "fixed.cfg", seed003Fixed(b.listen, stats, servers, checks))
	res, code := b.reloadJSON(t, nil, "--candidate", fixed, "--kill-ghosts")
	if code != 0 || !res.OK {
		t.Fatalf("reload --kill-ghosts: exit %d, %+v", code, res)
	}
	ghosts := 0
	for _, p := range res.Processes {
		if p.Class == reload.ClassGhost || p.Class == reload.ClassDivergent {
			ghosts++
		}
	}
	if ghosts != 0 || res.Probes.Total == 0 || res.Probes.Failed != 0 {
		t.Fatalf("ghosts %d, probes %d/%d", ghosts, res.Probes.OK, res.Probes.Total)
	}
	var sweep reload.Stage
	for _, s := range res.Stages {
		if s.Name == reload.StageSweep {
			sweep = s
		}
	}
	if !strings.Contains(sweep.Detail, "killed 2") {
		t.Fatalf("sweep %+v, want 2 ghosts killed", sweep)
	}
	if len(res.Probes.Servers) != len(servers) {
		t.Fatalf("backend health from the stats socket: %+v", res.Probes.Servers)
	}
	t.Logf("backends after the reload: %+v", res.Probes.Servers)
	human, _, _ := b.haguard(t, nil, "status")
	t.Logf("status after the fix:\n%s", human)
}
