package ansible

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeHaguard is a shell stand-in for haguard, for the play's control
// flow only (the real haguard is in TestFleetInSandboxes). It logs every
// call to $FAKE_DIR/$FAKE_HOST.calls; `reload` exits $FAKE_RC with a
// Result whose id is txn-<host>-<call>; `probe` exits $FAKE_PROBE_RC;
// `rollback`, `status` and `confirm` succeed; `status` and `history`
// print $FAKE_DIR/$FAKE_HOST.status and .history when they exist.
const fakeHaguard = `#!/bin/sh
log="$FAKE_DIR/$FAKE_HOST.calls"
sub="$1"
# One line per call: the subcommand, then every argument in brackets.
{ printf '%s' "$1"; shift; for a in "$@"; do printf ' [%s]' "$a"; done; echo; } >>"$log"
n=$(wc -l <"$log")
case "$sub" in
reload)
	ok=false; [ "$FAKE_RC" = 0 ] && ok=true
	rb=false; [ "$FAKE_RC" = 1 ] && rb=true
	err=""; [ $ok = true ] || err="fake probe failure"
	echo '{"id":"txn-'"$FAKE_HOST-$n"'","ok":'$ok',"unchanged":false,"rolled_back":'$rb',"stages":[{"name":"check","ok":true,"error":""},{"name":"probe","ok":'$ok',"error":"'"$err"'"}]}'
	exit "$FAKE_RC";;
rollback)
	echo '{"id":"rb-'"$FAKE_HOST-$n"'","ok":true,"unchanged":false,"rolled_back":false,"stages":[{"name":"check","ok":true,"error":""}]}';;
status)
	if [ -f "$FAKE_DIR/$FAKE_HOST.status" ]; then cat "$FAKE_DIR/$FAKE_HOST.status"
	else echo '{"active_state":"active","sub_state":"running","generation":2,"drift":false,"drift_reason":"","errors":[]}'; fi;;
history)
	if [ -f "$FAKE_DIR/$FAKE_HOST.history" ]; then cat "$FAKE_DIR/$FAKE_HOST.history"; else echo '[]'; fi;;
probe)
	echo '{"ok":false,"targets":[{"target":"127.0.0.1:8443","ok":2,"attempts_total":6,"fail":4,"errors":{"refused":4}}]}'
	exit "${FAKE_PROBE_RC:-0}";;
esac
exit 0
`

// fakeFleet writes the fake and an inventory of hosts (local connection)
// whose haguard_cmd runs it with the given per-host environment. A host
// whose env is "unreachable" is an ssh host on a closed port.
type fakeFleet struct {
	dir   string
	hosts []string
	env   map[string]string
}

func newFakeFleet(t *testing.T, hosts []string, env map[string]string) *fakeFleet {
	t.Helper()
	f := &fakeFleet{dir: t.TempDir(), hosts: hosts, env: env}
	writeFile(t, filepath.Join(f.dir, "haguard"), fakeHaguard)
	if err := os.Chmod(filepath.Join(f.dir, "haguard"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.dir, "candidate.cfg"), "# candidate\n")
	return f
}

func (f *fakeFleet) inventory() string {
	var b strings.Builder
	b.WriteString("[haproxy]\n")
	for _, h := range f.hosts {
		e := f.env[h]
		if e == "unreachable" {
			fmt.Fprintf(&b, "%s ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1 ansible_ssh_common_args='-o BatchMode=yes -o ConnectTimeout=2'\n", h)
			continue
		}
		fmt.Fprintf(&b, "%s ansible_connection=local haguard_candidate_dest=%s haguard_cmd=%q\n", h,
			filepath.Join(f.dir, h+".cfg"),
			fmt.Sprintf("env FAKE_HOST=%s FAKE_DIR=%s FAKE_RC=0 %s %s", h, f.dir, e, filepath.Join(f.dir, "haguard")))
	}
	b.WriteString("[haproxy:vars]\nansible_become=false\nansible_python_interpreter=/usr/bin/python3\n")
	return b.String()
}

// calls returns the haguard command lines run on host, in order.
func (f *fakeFleet) calls(host string) []string {
	b, err := os.ReadFile(filepath.Join(f.dir, host+".calls"))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (f *fakeFleet) pushed(host string) bool {
	_, err := os.Stat(filepath.Join(f.dir, host+".cfg"))
	return err == nil
}

func (f *fakeFleet) run(t *testing.T, extra ...string) play {
	t.Helper()
	return runPlaybook(t, "playbook.yml", f.inventory(), append([]string{"haguard_candidate_src=" + filepath.Join(f.dir, "candidate.cfg")}, extra...)...)
}

// callsLike returns the calls that start with prefix.
func callsLike(calls []string, prefix string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// TestFleetGateFailureRollsBackTheRun: waves [1, 1, 100%], a gate after
// every wave and the commit-confirmed hook on. lb1 (canary) commits,
// passes the gate and is confirmed; lb2 commits but its probe fails the
// gate: the rollout stops before lb3 and lb4, and both lb1 and lb2 are
// rolled back to the transactions they recorded.
func TestFleetGateFailureRollsBackTheRun(t *testing.T) {
	t.Parallel() // each run has its own fake, inventory and temp dirs
	f := newFakeFleet(t, []string{"lb1", "lb2", "lb3", "lb4"}, map[string]string{"lb2": "FAKE_PROBE_RC=1"})
	p := f.run(t, `{"haguard_waves": [1, 1, "100%"], "haguard_gate": true, "haguard_confirm_within": "5m"}`)
	if p.rc == 0 {
		t.Fatalf("ansible-playbook exited 0; want a failed run")
	}
	r := p.mustReport(t)
	if r.OK || !sameSet(r.Failed, []string{"lb2"}) || !sameSet(r.RolledBack, []string{"lb1", "lb2"}) ||
		!sameSet(r.NotReached, []string{"lb3", "lb4"}) || len(r.Changed) != 0 {
		t.Errorf("report %+v; want lb2 failed, lb1 and lb2 rolled back, lb3 and lb4 not reached", r)
	}
	if h := r.Hosts["lb2"]; h.Outcome != "gate_failed" || !h.Committed || h.Wave != 2 || !strings.Contains(h.Error, "after the soak: haguard status exited 0: active/running, generation 2, no drift; haguard probe exited 1: 127.0.0.1:8443 2/6 OK (4 x refused)") {
		t.Errorf("lb2: %+v; want a committed host of wave 2 that failed the gate on its probe", h)
	}
	if !p.failedHost("lb2") || p.failedHost("lb1") {
		t.Errorf("recap %v; want lb2 failed and lb1 not", p.recap)
	}
	run := r.Run
	lb1, lb2 := f.calls("lb1"), f.calls("lb2")
	want := map[string][]string{
		"lb1": {"reload", "status", "probe", "confirm [txn-lb1-1]", "rollback [txn-lb1-1]"},
		"lb2": {"reload", "status", "probe", "rollback [txn-lb2-1]"},
	}
	for host, calls := range map[string][]string{"lb1": lb1, "lb2": lb2} {
		if len(calls) != len(want[host]) {
			t.Errorf("%s: calls %q; want %q", host, calls, want[host])
			continue
		}
		for i, w := range want[host] {
			if !strings.HasPrefix(calls[i], w) {
				t.Errorf("%s: call %d is %q; want %q...", host, i, calls[i], w)
			}
		}
	}
	reload := callsLike(lb1, "reload")
	if len(reload) != 1 || !strings.Contains(reload[0], "[--reason] [haguard-run="+run+" rollout: ansible rollout]") ||
		!strings.Contains(reload[0], "[--confirm-within] [5m]") {
		t.Errorf("lb1 reload: %q; want the run's reason and --confirm-within 5m", reload)
	}
	rb := callsLike(lb2, "rollback")
	if len(rb) != 1 || !strings.Contains(rb[0], "[--reason] [haguard-run="+run+" fleet-rollback: the rollout failed on lb2]") {
		t.Errorf("lb2 rollback: %q; want the run's fleet-rollback reason", rb)
	}
	for _, h := range []string{"lb3", "lb4"} {
		if c := f.calls(h); len(c) != 0 || f.pushed(h) {
			t.Errorf("%s: calls %q, candidate pushed %v; want an untouched host", h, c, f.pushed(h))
		}
	}
}

// TestFleetCanaryBroken: the canary's reload exits 3. The rollout stops
// at the canary with the message that pages a human; nothing is rolled
// back (nothing committed) and lb2 never receives the candidate.
func TestFleetCanaryBroken(t *testing.T) {
	t.Parallel() // each run has its own fake, inventory and temp dirs
	f := newFakeFleet(t, []string{"lb1", "lb2"}, map[string]string{"lb1": "FAKE_RC=3"})
	p := f.run(t)
	if p.rc == 0 {
		t.Fatalf("ansible-playbook exited 0; want a failed run")
	}
	r := p.mustReport(t)
	if h := r.Hosts["lb1"]; h.Outcome != "broken" || h.Wave != 1 || h.RC != 3 || h.Committed {
		t.Errorf("lb1: %+v; want broken in wave 1", h)
	}
	if !sameSet(r.Failed, []string{"lb1"}) || len(r.RolledBack) != 0 || !sameSet(r.NotReached, []string{"lb2"}) {
		t.Errorf("report %+v; want lb1 failed, nothing rolled back, lb2 not reached", r)
	}
	if !strings.Contains(p.out, "THIS HOST NEEDS A HUMAN") {
		t.Errorf("the output does not say that lb1 needs a human")
	}
	if c := callsLike(f.calls("lb1"), "rollback"); len(c) != 0 {
		t.Errorf("lb1 was rolled back by the play: %q", c)
	}
	if c := f.calls("lb2"); len(c) != 0 || f.pushed("lb2") {
		t.Errorf("lb2: calls %q, pushed %v; want untouched", c, f.pushed("lb2"))
	}
	if _, ran := p.recap["lb2"]; ran {
		t.Errorf("lb2 ran tasks: recap %v", p.recap)
	}
}

// TestFleetUnreachableHostFailsTheWave: a host that cannot be reached
// fails its wave like a failed reload (Ansible alone would drop it and
// start the next wave): the canary that committed is rolled back, and the
// summary says the unreachable host's state is unknown.
func TestFleetUnreachableHostFailsTheWave(t *testing.T) {
	t.Parallel() // each run has its own fake, inventory and temp dirs
	f := newFakeFleet(t, []string{"lb1", "lb2", "lb3"}, map[string]string{"lb2": "unreachable"})
	p := f.run(t, `{"haguard_waves": [1, 1, 1]}`)
	if p.rc == 0 {
		t.Fatalf("ansible-playbook exited 0; want a failed run")
	}
	r := p.mustReport(t)
	if h := r.Hosts["lb2"]; h.Outcome != "unreachable" || h.Committed {
		t.Errorf("lb2: %+v; want unreachable", h)
	}
	if !sameSet(r.RolledBack, []string{"lb1"}) || !sameSet(r.NotReached, []string{"lb3"}) {
		t.Errorf("report %+v; want lb1 rolled back, lb3 not reached", r)
	}
	if !strings.Contains(strings.Join(r.Lines, "\n"), "state unknown on lb2") {
		t.Errorf("summary %q does not say lb2's state is unknown", r.Lines)
	}
	if c := f.calls("lb3"); len(c) != 0 {
		t.Errorf("lb3 ran haguard: %q", c)
	}
}

// TestRollbackYmlDecides drives rollback.yml against hosts whose history
// and status (the fake's) put them in each case: lb1 runs what the run
// installed (rolled back), lb2 already runs what ran before it, lb3 has
// only a refused entry of the run, lb4 runs something a later transaction
// installed (left alone, failed). Another run's entry on lb1 is ignored.
func TestRollbackYmlDecides(t *testing.T) {
	t.Parallel() // each run has its own fake, inventory and temp dirs
	f := newFakeFleet(t, []string{"lb1", "lb2", "lb3", "lb4"}, nil)
	const run = "CHG-4411"
	entry := func(id, reason, outcome, before, after string) string {
		return fmt.Sprintf(`{"id":%q,"reason":%q,"outcome":%q,"before_sha256":%q,"after_sha256":%q}`, id, reason, outcome, before, after)
	}
	hosts := map[string]struct{ history, running string }{
		"lb1": {"[" + entry("t0", "haguard-run=CHG-4411x rollout: other", "committed", "0000", "aaaa") + "," +
			entry("t1", "haguard-run="+run+" rollout: ansible rollout", "committed", "aaaa", "bbbb") + "]", "bbbb"},
		"lb2": {"[" + entry("t1", "haguard-run="+run+" rollout: ansible rollout", "committed", "aaaa", "bbbb") + "]", "aaaa"},
		"lb3": {"[" + entry("t1", "haguard-run="+run+" rollout: ansible rollout", "refused", "", "") + "]", "aaaa"},
		"lb4": {"[" + entry("t1", "haguard-run="+run+" rollout: ansible rollout", "committed", "aaaa", "bbbb") + "]", "cccc"},
	}
	for h, v := range hosts {
		writeFile(t, filepath.Join(f.dir, h+".history"), v.history)
		writeFile(t, filepath.Join(f.dir, h+".status"), `{"running_sha256":"`+v.running+`"}`)
	}
	p := runPlaybook(t, "rollback.yml", f.inventory(), "haguard_run_id="+run, `{"haguard_rollback_note": "INC 7"}`)
	if p.rc == 0 {
		t.Fatalf("ansible-playbook exited 0; want lb4 failed")
	}
	r := p.mustReport(t)
	if r.OK || !sameSet(r.RolledBack, []string{"lb1"}) || !sameSet(r.Unchanged, []string{"lb2"}) ||
		!sameSet(r.NotInRun, []string{"lb3"}) || !sameSet(r.RollbackFailed, []string{"lb4"}) {
		t.Errorf("report %+v; want lb1 rolled back, lb2 already back, lb3 not in the run, lb4 left alone", r)
	}
	if rb := callsLike(f.calls("lb1"), "rollback"); len(rb) != 1 || !strings.HasPrefix(rb[0], "rollback [t1]") ||
		!strings.Contains(rb[0], "[--reason] [haguard-run="+run+" rollback: INC 7]") {
		t.Errorf("lb1 rollback calls %q; want one of t1 with the run's reason", rb)
	}
	for _, h := range []string{"lb2", "lb3", "lb4"} {
		if rb := callsLike(f.calls(h), "rollback"); len(rb) != 0 {
			t.Errorf("%s was rolled back: %q", h, rb)
		}
	}
	if !p.failedHost("lb4") || p.failedHost("lb1") || p.failedHost("lb2") || p.failedHost("lb3") {
		t.Errorf("recap %v; want only lb4 failed", p.recap)
	}

	// With haguard_rollback_force, lb4 is rolled back too.
	p = runPlaybook(t, "rollback.yml", f.inventory(), "haguard_run_id="+run, "haguard_rollback_force=true", "haguard_hosts=lb4")
	if r := p.mustReport(t); p.rc != 0 || !sameSet(r.RolledBack, []string{"lb4"}) {
		t.Errorf("forced: rc %d, report %+v; want lb4 rolled back", p.rc, r)
	}
}

// TestPlaybooksSyntax: both playbooks parse, with their roles and task
// files (ansible-playbook --syntax-check; rollback.yml runs for real only
// in the system tier and against the fake above).
func TestPlaybooksSyntax(t *testing.T) {
	t.Parallel() // each run has its own fake, inventory and temp dirs
	bin := needAnsible(t)
	inv := filepath.Join(t.TempDir(), "inventory.ini")
	writeFile(t, inv, "[haproxy]\nlb1 ansible_connection=local\n")
	for _, pb := range []string{"playbook.yml", "rollback.yml"} {
		cmd := exec.Command(bin, "--syntax-check", "-i", inv, pb)
		cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG=ansible.cfg", "ANSIBLE_LOCAL_TEMP="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("ansible-playbook --syntax-check %s: %v\n%s", pb, err, out)
		}
	}
}
