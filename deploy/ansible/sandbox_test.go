package ansible

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

// appSocket is where v3 of the fleet's config sends traffic: a unix
// socket in the host's private /run, served by the "application" on
// every host but lb3.
const appSocket = "/run/haguard-test-app.sock"

// The candidate templates the fleet test rolls out; each host renders
// them with its own listen address (the sandboxes share the loopback).
// v2 changes a timeout; v3 moves the backend to the local app socket.
const (
	candidateV2 = `global
	maxconn 256

defaults
	mode tcp
	retries 0
	timeout connect 1s
	timeout client 31s
	timeout server 30s

frontend fe_test
	bind {{ haguard_test_listen }}
	default_backend be_test

backend be_test
	server s1 {{ haguard_test_backend }}
`
	candidateV3 = `global
	maxconn 256

defaults
	mode tcp
	retries 0
	timeout connect 1s
	timeout client 31s
	timeout server 30s

frontend fe_test
	bind {{ haguard_test_listen }}
	default_backend be_test

backend be_test
	server app unix@` + appSocket + `
`
)

// fleetBox is one host of the fleet: a test-bed sandbox running Debian's
// haproxy.service with a TCP proxy on its own loopback port.
type fleetBox struct {
	name, listen, yaml string
	s                  *testbed.Sandbox
	bin                string
}

// haguard runs the real haguard inside the box with the box's haguard.yaml.
func (b *fleetBox) haguard(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _, err := b.s.Run(ctx, append([]string{b.bin, "--config-file", b.yaml}, args...)...)
	if err != nil {
		t.Fatalf("%s: haguard %s: %v", b.name, strings.Join(args, " "), err)
	}
	return out
}

// transcript writes content to $HAGUARD_FLEET_TRANSCRIPT/name when that
// directory is set: the real output docs/fleet.md quotes.
func transcript(t *testing.T, name, content string) {
	t.Helper()
	dir := os.Getenv("HAGUARD_FLEET_TRANSCRIPT")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, name), content)
}

// history runs `haguard history --format json` inside the box.
func (b *fleetBox) history(t *testing.T) []historyEntry {
	t.Helper()
	out := b.haguard(t, "history", "--format", "json")
	var es []historyEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("%s: haguard history: %v\n%s", b.name, err, out)
	}
	return es
}

type historyEntry struct {
	ID           string `json:"id"`
	Reason       string `json:"reason"`
	Outcome      string `json:"outcome"`
	Confirmation *struct {
		Result string `json:"result"`
		By     string `json:"by"`
	} `json:"confirmation"`
}

// runEntries returns the outcome of every history entry of run, in order,
// as "<kind> <outcome>" where kind is the reason's word after the tag
// (rollout, fleet-rollback, rollback).
func runEntries(es []historyEntry, run string) []string {
	var out []string
	for _, e := range es {
		rest, ok := strings.CutPrefix(e.Reason, "haguard-run="+run+" ")
		if !ok {
			continue
		}
		kind, _, _ := strings.Cut(rest, ":")
		out = append(out, strings.Fields(kind)[0]+" "+e.Outcome)
	}
	return out
}

// TestFleetInSandboxes is issue 19's acceptance: playbook.yml and
// rollback.yml against four sandboxes (real systemd, Debian's
// haproxy.service, the real haguard inside each), with the default waves
// [1, 10%, 100%]: lb1 (the canary), lb2, then lb3 and lb4 together.
//
//  1. v2 reaches all four, each wave soaked for a second and gated on the
//     real `haguard status` and `haguard probe` (and the optional ghosts
//     pre-step kills a ghost on lb1 on the way).
//  2. v3 sends traffic to a local app socket that lb3 does not have: its
//     probe really fails there and haguard rolls lb3 back; the play then
//     rolls back lb1, lb2 and lb4, which had committed. All four end on
//     v2, byte for byte, serving traffic, and each history shows the run.
//  3. rollback.yml -e haguard_run_id=<run 1> returns all four to v1.
//  4. rollback.yml of run 2 then refuses the hosts where a later
//     transaction (step 3) replaced what run 2 left, and changes nothing.
func TestFleetInSandboxes(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	needAnsible(t)
	bin := testbed.BuildHaguard(t)
	backend := testbed.TCPBackend(t)
	dead := testbed.DeadAddr(t)
	tmpl := t.TempDir()
	writeFile(t, filepath.Join(tmpl, "v2.cfg.j2"), candidateV2)
	writeFile(t, filepath.Join(tmpl, "v3.cfg.j2"), candidateV3)

	var boxes []*fleetBox
	var inv strings.Builder
	inv.WriteString("[haproxy]\n")
	for _, name := range []string{"lb1", "lb2", "lb3", "lb4"} {
		b := &fleetBox{name: name, s: testbed.Boot(t), listen: fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t)), bin: bin}
		dir := b.s.Dir()
		b.yaml = filepath.Join(dir, "haguard.yaml")
		b.s.StartHAProxy(t, testbed.TCPProxyConfig(b.listen, backend))
		writeFile(t, b.yaml, fmt.Sprintf(`haproxy:
  configs: [%s]
state_dir: %s
reload:
  min_interval: 0s
policy:
  # v3 sends traffic to the app's socket in /run: the operator allows it.
  runtime_paths: [/run/haproxy, /run]
probe:
  targets:
    - address: %s
      kind: tcp
      expect: %q
      count: 6
`, b.s.HAProxyConfig(), filepath.Join(dir, "haguard-state"), b.listen, strings.TrimSpace(testbed.Greeting)))
		if name != "lb3" {
			serveApp(t, b.s.HostPath(appSocket))
		}
		// Each host's haguard runs inside its box, with a clean environment.
		cmd := fmt.Sprintf("nsenter -t %d -m -p -u -i -C -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin %s", b.s.HostPID(), bin)
		fmt.Fprintf(&inv, "%s ansible_connection=local haguard_candidate_dest=%s haguard_cmd=%q haguard_global_args=%q haguard_test_listen=%s haguard_test_backend=%s\n",
			name, filepath.Join(dir, "candidate.cfg"), cmd, "--config-file "+b.yaml, b.listen, backend)
		boxes = append(boxes, b)
	}
	inv.WriteString("[haproxy:vars]\nansible_become=false\nansible_python_interpreter=/usr/bin/python3\n")
	v1 := map[string]string{}
	for _, b := range boxes {
		v1[b.name] = readFile(t, b.s.HAProxyConfig())
	}

	// Seed 003's ghost on lb1: a haproxy started by hand with an old
	// config (dead backend) on the same port. The optional pre-step kills
	// it; without it the reload's sweep would fail the transaction.
	ghost := boxes[0].s.StartGhost(t, testbed.TCPProxyConfig(boxes[0].listen, dead))

	// 1. v2 reaches all four, in the waves [lb1] [lb2] [lb3 lb4], each
	// host committed provisionally and confirmed after its wave's gate.
	p := runPlaybook(t, "playbook.yml", inv.String(),
		"haguard_candidate_template="+filepath.Join(tmpl, "v2.cfg.j2"), "haguard_kill_ghosts_first=true", "haguard_soak_seconds=1",
		"haguard_confirm_within=10m")
	transcript(t, "1-rollout-v2.txt", "$ "+p.cmd+"\n"+p.out)
	if p.rc != 0 {
		t.Fatalf("v2 rollout: ansible-playbook exited %d (recap %v)", p.rc, p.recap)
	}
	good := p.mustReport(t)
	if !good.OK || !sameSet(good.Changed, []string{"lb1", "lb2", "lb3", "lb4"}) {
		t.Errorf("v2 rollout: report %+v; want all four changed", good)
	}
	for host, wave := range map[string]int{"lb1": 1, "lb2": 2, "lb3": 3, "lb4": 3} {
		if h := good.Hosts[host]; h.Wave != wave || h.Outcome != "committed" {
			t.Errorf("v2 rollout, %s: %+v; want committed in wave %d", host, h, wave)
		}
	}
	select {
	case <-ghost.Done():
	case <-time.After(10 * time.Second):
		t.Errorf("v2 rollout: the ghost on lb1 (box pid %d) is still alive after the ghosts --kill pre-step", ghost.BoxPID)
	}
	// The soak gate ran the real `haguard status` and `haguard probe` on
	// every host, after each wave, and they passed.
	for _, gate := range []string{"Gate: haguard status", "Gate: haguard probe"} {
		if n := strings.Count(p.out, "TASK [haguard_reload : "+gate); n != 3 {
			t.Errorf("v2 rollout: %q ran in %d waves; want 3", gate, n)
		}
	}
	if !strings.Contains(p.out, `"ghost": 1`) {
		t.Errorf("v2 rollout: the play output does not show the pre-step's sweep with one ghost")
	}
	v2 := map[string]string{}
	for _, b := range boxes {
		want := strings.NewReplacer("{{ haguard_test_listen }}", b.listen, "{{ haguard_test_backend }}", backend).Replace(candidateV2)
		if got := readFile(t, b.s.HAProxyConfig()); got != want {
			t.Errorf("v2 rollout, %s: the running config is not the rendered candidate:\n%s", b.name, got)
		}
		v2[b.name] = want
		if r, ok := p.result[b.name]; !ok || !r.OK || r.RolledBack {
			t.Errorf("v2 rollout, %s: Result %+v (shown: %v)", b.name, r, ok)
		}
		expectTraffic(t, b, "after the v2 rollout")
		confirmed := false
		for _, e := range b.history(t) {
			if strings.HasPrefix(e.Reason, "haguard-run="+good.Run+" ") && e.Outcome == "committed" && e.Confirmation != nil {
				confirmed = e.Confirmation.Result == "confirmed"
			}
		}
		if !confirmed {
			t.Errorf("v2 rollout, %s: the run's transaction was not confirmed by the gate: %+v", b.name, b.history(t))
		}
		if st := b.haguard(t, "status", "--format", "json"); strings.Contains(st, `"pending"`) {
			t.Errorf("v2 rollout, %s: a confirmation window is still open:\n%s", b.name, st)
		}
	}

	// 2. v3 fails on lb3: lb3 rolled back by haguard, the others by the play.
	p = runPlaybook(t, "playbook.yml", inv.String(), "haguard_candidate_template="+filepath.Join(tmpl, "v3.cfg.j2"))
	transcript(t, "2-rollout-v3.txt", "$ "+p.cmd+"\n"+p.out)
	if p.rc == 0 {
		t.Fatalf("v3 rollout: ansible-playbook succeeded; want it to fail on lb3")
	}
	bad := p.mustReport(t)
	if bad.OK || !sameSet(bad.Failed, []string{"lb3"}) || !sameSet(bad.RolledBack, []string{"lb1", "lb2", "lb4"}) ||
		len(bad.Changed) != 0 || len(bad.RollbackFailed) != 0 {
		t.Errorf("v3 rollout: report %+v; want lb3 failed and lb1, lb2, lb4 rolled back", bad)
	}
	if h := bad.Hosts["lb3"]; h.Outcome != "rolled_back" || h.Wave != 3 || h.Committed {
		t.Errorf("v3 rollout, lb3: %+v; want rolled back by haguard in wave 3", h)
	}
	if ok, found := p.result["lb3"].stage("probe"); !found || ok {
		t.Errorf("v3 rollout, lb3: the probe stage did not fail: %+v", p.result["lb3"].Stages)
	}
	if !p.failedHost("lb3") || p.failedHost("lb1") {
		t.Errorf("v3 rollout: recap %v; want lb3 failed, the others not", p.recap)
	}
	for _, b := range boxes {
		if got := readFile(t, b.s.HAProxyConfig()); got != v2[b.name] {
			t.Errorf("v3 rollout, %s: not back on v2 byte for byte:\n%s", b.name, got)
		}
		expectTraffic(t, b, "after the fleet rollback")
		want := []string{"rollout committed", "fleet-rollback committed"}
		if b.name == "lb3" {
			want = []string{"rollout rolled_back"}
		}
		if got := runEntries(b.history(t), bad.Run); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("v3 rollout, %s: history of run %s: %q; want %q", b.name, bad.Run, got, want)
		}
	}

	// 3. rollback.yml returns run 1's hosts to v1.
	p = runPlaybook(t, "rollback.yml", inv.String(), "haguard_run_id="+good.Run)
	transcript(t, "3-rollback-run1.txt", "$ "+p.cmd+"\n"+p.out)
	if p.rc != 0 {
		t.Fatalf("rollback of %s: ansible-playbook exited %d (recap %v)", good.Run, p.rc, p.recap)
	}
	rb := p.mustReport(t)
	if !rb.OK || !sameSet(rb.RolledBack, []string{"lb1", "lb2", "lb3", "lb4"}) {
		t.Errorf("rollback of %s: report %+v; want all four rolled back", good.Run, rb)
	}
	for _, b := range boxes {
		if got := readFile(t, b.s.HAProxyConfig()); got != v1[b.name] {
			t.Errorf("rollback of %s, %s: not back on v1 byte for byte:\n%s", good.Run, b.name, got)
		}
		expectTraffic(t, b, "after the rollback of run 1")
		if got := runEntries(b.history(t), good.Run); strings.Join(got, ",") != "rollout committed,rollback committed" {
			t.Errorf("rollback of %s, %s: history of the run: %q", good.Run, b.name, got)
		}
		transcript(t, "4-history-"+b.name+".txt", "$ haguard history\n"+b.haguard(t, "history"))
	}

	// 4. rollback.yml of run 2 now finds v1 where run 2 left v2: it leaves
	// lb1, lb2 and lb4 alone (and fails them), and lb3 had no commit.
	p = runPlaybook(t, "rollback.yml", inv.String(), "haguard_run_id="+bad.Run)
	transcript(t, "5-rollback-run2.txt", "$ "+p.cmd+"\n"+p.out)
	stale := p.mustReport(t)
	if p.rc == 0 || stale.OK || !sameSet(stale.RollbackFailed, []string{"lb1", "lb2", "lb4"}) || !sameSet(stale.NotInRun, []string{"lb3"}) {
		t.Errorf("rollback of %s after run 1's: rc %d, report %+v; want lb1, lb2, lb4 left alone, lb3 not in the run", bad.Run, p.rc, stale)
	}
	if rb := stale.Hosts["lb1"].Rollback; rb == nil || rb.Outcome != "changed_since" {
		t.Errorf("rollback of %s, lb1: %+v; want changed_since", bad.Run, rb)
	}
	for _, b := range boxes {
		if got := readFile(t, b.s.HAProxyConfig()); got != v1[b.name] {
			t.Errorf("rollback of %s, %s: the config changed:\n%s", bad.Run, b.name, got)
		}
	}
}

// serveApp is the application behind v3: it greets every connection on a
// unix socket at path (a host path into a box's private /run) and echoes.
func serveApp(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("app socket %s: %v", path, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.WriteString(c, testbed.Greeting); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
}

// expectTraffic runs the seeds' connect loop through the box's listener.
func expectTraffic(t *testing.T, b *fleetBox, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ok, fail := testbed.ConnectLoop(ctx, b.listen, 20, testbed.Greeting); fail != 0 || ok != 20 {
		t.Errorf("%s, %s: connect loop OK %d / FAIL %d; want 20/0", when, b.name, ok, fail)
	}
}
