// Package ansible holds no code: its tests run the haguard_reload role
// with Debian's ansible-playbook, against a fake haguard (exit-code
// handling) and against real haguard in test-bed sandboxes.
package ansible

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

func TestMain(m *testing.M) { os.Exit(testbed.RunMain(m)) }

// play is one ansible-playbook run.
type play struct {
	rc     int
	out    string
	recap  map[string]string       // host -> its PLAY RECAP line
	result map[string]reloadResult // host -> the Result the role printed
}

// reloadResult is the part of haguard's JSON Result the tests read.
type reloadResult struct {
	ID         string `json:"id"`
	OK         bool   `json:"ok"`
	Unchanged  bool   `json:"unchanged"`
	RolledBack bool   `json:"rolled_back"`
	Stages     []struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"stages"`
}

func (r reloadResult) stage(name string) (ok, found bool) {
	for _, s := range r.Stages {
		if s.Name == name {
			return s.OK, true
		}
	}
	return false, false
}

var (
	recapLine  = regexp.MustCompile(`(?m)^(\S+)\s+: (ok=\d+.*)$`)
	resultHead = regexp.MustCompile(`(?m)^ok: \[(\S+)\] => `)
)

// runPlaybook runs deploy/ansible/playbook.yml with inventory and extra
// vars, with ansible's temp dirs under t.TempDir().
func runPlaybook(t *testing.T, inventory string, extra ...string) play {
	t.Helper()
	if testing.Short() {
		t.Skip("needs ansible-playbook (make deps); -short runs unit tests only")
	}
	bin, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Fatalf("ansible-playbook: %v (Debian package ansible-core; make deps installs it)", err)
	}
	tmp := t.TempDir()
	inv := filepath.Join(tmp, "inventory.ini")
	if err := os.WriteFile(inv, []byte(inventory), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-i", inv, "playbook.yml"}
	for _, e := range extra {
		args = append(args, "-e", e)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"ANSIBLE_CONFIG="+filepath.Join(".", "ansible.cfg"),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(tmp, "local"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(tmp, "remote"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_STDOUT_CALLBACK=default",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	p := play{recap: map[string]string{}, result: map[string]reloadResult{}}
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("ansible-playbook: %v\n%s", err, out.String())
		}
		p.rc = ee.ExitCode()
	}
	p.out = out.String()
	t.Logf("ansible-playbook %s: rc %d\n%s", strings.Join(extra, " "), p.rc, p.out)
	if i := strings.Index(p.out, "PLAY RECAP"); i >= 0 {
		for _, m := range recapLine.FindAllStringSubmatch(p.out[i:], -1) {
			p.recap[m[1]] = m[2]
		}
	}
	// The role prints `ok: [host] => {"haguard_result": {...}}`.
	for _, loc := range resultHead.FindAllStringSubmatchIndex(p.out, -1) {
		host := p.out[loc[2]:loc[3]]
		var v struct {
			Result *reloadResult `json:"haguard_result"`
		}
		if err := json.NewDecoder(strings.NewReader(p.out[loc[1]:])).Decode(&v); err == nil && v.Result != nil {
			p.result[host] = *v.Result
		}
	}
	return p
}

func (p play) failedHost(host string) bool { return strings.Contains(p.recap[host], "failed=1") }

// TestRoleStopsTheRollout drives the role with a fake haguard that exits
// with a chosen code and prints a Result, to pin down the play's control
// flow: 0 goes on to the next host; 1, 2 and 3 stop the rollout at the
// first host. The real haguard is in TestRolloutInSandbox.
func TestRoleStopsTheRollout(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "haguard")
	script := `#!/bin/sh
echo "$*" >>"$0.calls"
echo '{"id":"fake-1","ok":'"$( [ "$FAKE_RC" = 0 ] && echo true || echo false )"',"rolled_back":false,"stages":[{"name":"check","ok":true}]}'
exit $FAKE_RC
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cand := filepath.Join(dir, "candidate.cfg")
	if err := os.WriteFile(cand, []byte("# candidate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, rc := range []int{0, 3} { // exit 1 is TestRolloutInSandbox's real rollback
		t.Run(fmt.Sprintf("exit%d", rc), func(t *testing.T) {
			os.Remove(fake + ".calls")
			dir := t.TempDir() // where the candidate is pushed, per host
			inv := fmt.Sprintf(`[haproxy]
lb1 ansible_connection=local haguard_candidate_dest=%[1]s/lb1.cfg
lb2 ansible_connection=local haguard_candidate_dest=%[1]s/lb2.cfg
[haproxy:vars]
ansible_become=false
ansible_python_interpreter=/usr/bin/python3
haguard_cmd="env FAKE_RC=%[2]d %[3]s"
`, dir, rc, fake)
			p := runPlaybook(t, inv, "haguard_candidate_src="+cand)
			calls, _ := os.ReadFile(fake + ".calls")
			n := strings.Count(string(calls), "reload --candidate")
			if _, ok := p.result["lb1"]; !ok {
				t.Errorf("the play output does not show lb1's Result")
			}
			if rc == 0 {
				if p.rc != 0 || n != 2 || p.failedHost("lb1") || p.failedHost("lb2") {
					t.Errorf("exit 0: ansible rc %d, %d reloads, recap %v; want rc 0 and both hosts reloaded", p.rc, n, p.recap)
				}
				return
			}
			if p.rc == 0 || n != 1 || !p.failedHost("lb1") {
				t.Errorf("exit %d: ansible rc %d, %d reloads, recap %v; want a failed play that stopped at lb1", rc, p.rc, n, p.recap)
			}
			if _, ok := p.recap["lb2"]; ok {
				t.Errorf("exit %d: lb2 ran after lb1 failed: %v", rc, p.recap)
			}
			if _, err := os.Stat(filepath.Join(dir, "lb2.cfg")); err == nil {
				t.Errorf("exit %d: the candidate was pushed to lb2", rc)
			}
		})
	}
}

// box is one "host" of the fleet: a test-bed sandbox running Debian's
// haproxy.service with a TCP proxy on its own loopback port.
type box struct {
	name   string
	s      *testbed.Sandbox
	listen string
	good   string // the config the good rollout installs
}

// TestRolloutInSandbox rolls configs out with the role to two sandboxes,
// running the real haguard inside each one (nsenter, as in production:
// same PID namespace as systemd, the box's own bus). A good candidate is
// committed on both hosts; a candidate that passes `haproxy -c` but
// points the backend at a dead port fails the probe on the first host,
// which ends rolled back, and the rollout stops before the second.
func TestRolloutInSandbox(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Fatalf("ansible-playbook: %v (Debian package ansible-core; make deps installs it)", err)
	}
	bin := testbed.BuildHaguard(t)
	backend := testbed.TCPBackend(t)
	dead := testbed.DeadAddr(t)

	var boxes []*box
	var inv strings.Builder
	inv.WriteString("[haproxy]\n")
	for _, name := range []string{"lb1", "lb2"} {
		b := &box{name: name, s: testbed.Boot(t), listen: fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))}
		dir := b.s.Dir()
		b.s.StartHAProxy(t, testbed.TCPProxyConfig(b.listen, backend))
		b.good = strings.Replace(testbed.TCPProxyConfig(b.listen, backend), "timeout client 30s", "timeout client 31s", 1)
		bad := testbed.TCPProxyConfig(b.listen, dead)
		writeFile(t, filepath.Join(dir, "good.cfg"), b.good)
		writeFile(t, filepath.Join(dir, "bad.cfg"), bad)
		writeFile(t, filepath.Join(dir, "haguard.yaml"), fmt.Sprintf(`haproxy:
  configs: [%s]
state_dir: %s
probe:
  targets:
    - address: %s
      kind: tcp
      expect: %q
      count: 6
`, b.s.HAProxyConfig(), filepath.Join(dir, "haguard-state"), b.listen, strings.TrimSpace(testbed.Greeting)))
		// Each host's haguard runs inside its box, with a clean environment.
		cmd := fmt.Sprintf("nsenter -t %d -m -p -u -i -C -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin %s", b.s.HostPID(), bin)
		fmt.Fprintf(&inv, "%s ansible_connection=local haguard_box_dir=%s haguard_candidate_dest=%s haguard_cmd=%q haguard_global_args=%q\n",
			name, dir, filepath.Join(dir, "candidate.cfg"), cmd, "--config-file "+filepath.Join(dir, "haguard.yaml"))
		boxes = append(boxes, b)
	}
	inv.WriteString("[haproxy:vars]\nansible_become=false\nansible_python_interpreter=/usr/bin/python3\n")

	// Seed 003's ghost on lb1: a haproxy started by hand with an old config
	// (dead backend) on the same port. The role's optional pre-step kills
	// it; without it the reload's sweep would fail the transaction.
	ghost := boxes[0].s.StartGhost(t, testbed.TCPProxyConfig(boxes[0].listen, dead))

	// A good candidate: committed on every host, in order.
	p := runPlaybook(t, inv.String(), "haguard_candidate_src={{ haguard_box_dir }}/good.cfg", "haguard_kill_ghosts_first=true")
	if p.rc != 0 {
		t.Fatalf("good rollout: ansible-playbook exited %d (recap %v)", p.rc, p.recap)
	}
	select {
	case <-ghost.Done():
	case <-time.After(10 * time.Second):
		t.Errorf("good rollout: the ghost on lb1 (box pid %d) is still alive after the ghosts --kill pre-step", ghost.BoxPID)
	}
	if !strings.Contains(p.out, "TASK [haguard_reload : Sweep and kill ghosts]") || !strings.Contains(p.out, `"ghost": 1`) {
		t.Errorf("good rollout: the play output does not show the pre-step's sweep with one ghost")
	}
	for _, b := range boxes {
		r, ok := p.result[b.name]
		if !ok || !r.OK || r.RolledBack || r.Unchanged {
			t.Errorf("good rollout, %s: Result %+v (shown: %v); want ok, not rolled back", b.name, r, ok)
		}
		if got := readFile(t, b.s.HAProxyConfig()); got != b.good {
			t.Errorf("good rollout, %s: the running config is not the candidate:\n%s", b.name, got)
		}
		expectTraffic(t, b, "after the good rollout")
	}

	// A bad candidate: lb1 probes fail, lb1 rolls back, lb2 is never touched.
	p = runPlaybook(t, inv.String(), "haguard_candidate_src={{ haguard_box_dir }}/bad.cfg")
	if p.rc == 0 {
		t.Fatalf("bad rollout: ansible-playbook succeeded; want it to stop at lb1")
	}
	lb1, lb2 := boxes[0], boxes[1]
	if !p.failedHost("lb1") {
		t.Errorf("bad rollout: lb1 did not fail: recap %v", p.recap)
	}
	if _, ran := p.recap["lb2"]; ran {
		t.Errorf("bad rollout: lb2 ran after lb1 failed: recap %v", p.recap)
	}
	r, ok := p.result["lb1"]
	if !ok || r.OK || !r.RolledBack {
		t.Errorf("bad rollout, lb1: Result %+v (shown: %v); want rolled_back", r, ok)
	}
	if ok, found := r.stage("probe"); !found || ok {
		t.Errorf("bad rollout, lb1: the probe stage did not fail: %+v", r.Stages)
	}
	if !strings.Contains(p.out, "haguard reload exited 1") {
		t.Errorf("bad rollout: the failure message does not name exit code 1")
	}
	if got := readFile(t, lb1.s.HAProxyConfig()); got != lb1.good {
		t.Errorf("bad rollout, lb1: the previous config was not restored:\n%s", got)
	}
	expectTraffic(t, lb1, "after the rollback")
	if got := readFile(t, filepath.Join(lb2.s.Dir(), "candidate.cfg")); got != lb2.good {
		t.Errorf("bad rollout: the bad candidate was pushed to lb2")
	}
	if got := readFile(t, lb2.s.HAProxyConfig()); got != lb2.good {
		t.Errorf("bad rollout, lb2: its config changed")
	}
	expectTraffic(t, lb2, "on the untouched host")
}

// expectTraffic runs the seeds' connect loop through the box's listener.
func expectTraffic(t *testing.T, b *box, when string) {
	t.Helper()
	ctx, cancel := contextWithTimeout()
	defer cancel()
	if ok, fail := testbed.ConnectLoop(ctx, b.listen, 20, testbed.Greeting); fail != 0 || ok != 20 {
		t.Errorf("%s, %s: connect loop OK %d / FAIL %d; want 20/0", when, b.name, ok, fail)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func contextWithTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}
