package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/internal/testbed/mastertest"
)

func runHaguard(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestGhostsUsageErrors(t *testing.T) {
	dir := t.TempDir()
	none := filepath.Join(dir, "none.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ghosts", "--grace", "0s"}, "--grace: must be positive"},
		{[]string{"ghosts", "--grace", "soon"}, "invalid argument"},
		{[]string{"ghosts", "--settle", "-1s"}, "--settle: must not be negative"},
		{[]string{"ghosts", "extra"}, "unknown command"},
		{[]string{"ghosts", "--format", "yaml"}, "--format"},
		{[]string{"ghosts", "--config-file", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		// Neither systemd nor the master CLI: nothing can be classified.
		{[]string{"ghosts", "--bus-address", "unix:path=" + none, "--master-socket", none}, "cannot tell managed haproxy from ghosts"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runHaguard(t, tc.args...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q (stdout %q); want exit 2 and %q", code, errOut, out, tc.want)
			}
		})
	}
}

func TestGhostsExitCodes(t *testing.T) {
	rep := func(ghost, divergent int) procs.Report {
		return procs.Report{Counts: procs.Counts{Current: 2, Ghost: ghost, Divergent: divergent}}
	}
	for _, tc := range []struct {
		name  string
		r     procs.Report
		kills []procs.KillResult
		want  int
	}{
		{"clean", rep(0, 0), nil, exitOK},
		{"ghost found", rep(1, 0), nil, exitNegative},
		{"divergent", rep(0, 1), nil, exitNegative},
		{"ghost killed", rep(1, 0), []procs.KillResult{{PID: 9, Outcome: procs.Terminated}}, exitOK},
		{"ghost needed SIGKILL", rep(1, 0), []procs.KillResult{{PID: 9, Outcome: procs.Killed}}, exitOK},
		{"ghost pid reused meanwhile", rep(1, 0), []procs.KillResult{{PID: 9, Outcome: procs.Reused}}, exitOK},
		{"ghost killed but divergent remains", rep(1, 1), []procs.KillResult{{PID: 9, Outcome: procs.Terminated}}, exitNegative},
		{"kill failed", rep(2, 0), []procs.KillResult{{PID: 9, Outcome: procs.Terminated}, {PID: 10, Outcome: procs.Failed}}, exitBroken},
		{"other units and foreign only", procs.Report{Counts: procs.Counts{Current: 2, OtherUnit: 2, Foreign: 1}}, nil, exitOK},
		{"conflict", procs.Report{Counts: procs.Counts{Current: 2, Conflict: 1}}, nil, exitNegative},
		{"ghost killed but a conflict remains", procs.Report{Counts: procs.Counts{Current: 2, Ghost: 1, Conflict: 1}},
			[]procs.KillResult{{PID: 9, Outcome: procs.Terminated}}, exitNegative},
	} {
		if got := ghostsExit(tc.r, tc.kills); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestPrintGhosts(t *testing.T) {
	r := procs.Report{Unit: "haproxy.service", MasterPID: 100, Processes: []procs.Process{
		{PID: 100, PPID: 1, Class: procs.Current, Reason: "master of haproxy.service (MainPID)", Listen: []string{}, Generation: 2},
		{PID: 900, PPID: 1, Class: procs.Ghost, Reason: "not in haproxy.service's cgroup", Listen: []string{"127.0.0.1:3307"}},
	}, Counts: procs.Counts{Current: 1, Ghost: 1}}
	var b bytes.Buffer
	printGhosts(&b, r, nil, false)
	out := b.String()
	for _, want := range []string{"unit haproxy.service, master pid 100", "PID", "CLASS", "900", "127.0.0.1:3307",
		"900 ghost: not in haproxy.service's cgroup", "1 current, 0 draining, 1 ghost, 0 divergent: ghosts found"} {
		if !strings.Contains(out, want) {
			t.Errorf("human output lacks %q:\n%s", want, out)
		}
	}
}

// TestPrintGhostsOthers: other units' and foreign processes are counted
// and named; a conflict names the unit to stop, before and after --kill.
func TestPrintGhostsOthers(t *testing.T) {
	r := procs.Report{Unit: "haproxy.service", MasterPID: 100, Processes: []procs.Process{
		{PID: 100, PPID: 1, Class: procs.Current, Reason: "master", Unit: "haproxy.service"},
		{PID: 200, PPID: 1, Class: procs.OtherUnit, Reason: "belongs to haproxy@b.service", Unit: "haproxy@b.service"},
		{PID: 300, PPID: 1, Class: procs.Foreign, Reason: "in another network namespace", Unit: "docker-1f.scope"},
		{PID: 400, PPID: 1, Class: procs.Conflict, Reason: "stop haproxy@c.service", Unit: "haproxy@c.service", Listen: []string{"127.0.0.1:3307"}},
		{PID: 401, PPID: 400, Class: procs.Conflict, Reason: "stop haproxy@c.service", Unit: "haproxy@c.service", Listen: []string{"127.0.0.1:3307"}},
	}, Counts: procs.Counts{Current: 1, OtherUnit: 1, Foreign: 1, Conflict: 2}}
	var b bytes.Buffer
	printGhosts(&b, r, nil, false)
	for _, want := range []string{"UNIT", "haproxy@b.service", "docker-1f.scope",
		"1 current, 0 draining, 0 ghost, 0 divergent, 1 other-unit, 1 foreign, 2 conflict: another unit listens on this unit's address; stop haproxy@c.service (never killed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("human output lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	printGhosts(&b, r, nil, true)
	if want := "after --kill: no ghost to kill, 0 ghost and 0 divergent remain, 2 conflict (stop haproxy@c.service): needs attention (--kill never touches another unit's haproxy; stop that unit)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("after --kill lacks %q:\n%s", want, b.String())
	}
	r.Processes, r.Counts = r.Processes[:3], procs.Counts{Current: 1, OtherUnit: 1, Foreign: 1}
	b.Reset()
	printGhosts(&b, r, nil, false)
	if !strings.Contains(b.String(), "1 other-unit, 1 foreign: clean\n") {
		t.Errorf("other units and foreign processes are clean:\n%s", b.String())
	}
}

// TestPrintGhostsAfterKill: with --kill the human report says what was
// found, what was done to each ghost, and closes on the state after the
// kill, not the state before it.
func TestPrintGhostsAfterKill(t *testing.T) {
	r := procs.Report{Unit: "haproxy.service", MasterPID: 100, Processes: []procs.Process{
		{PID: 100, PPID: 1, Class: procs.Current, Reason: "master", Generation: 2},
		{PID: 900, PPID: 1, Class: procs.Ghost, Reason: "not in haproxy.service's cgroup"},
		{PID: 901, PPID: 1, Class: procs.Ghost, Reason: "not in haproxy.service's cgroup"},
		{PID: 902, PPID: 1, Class: procs.Ghost, Reason: "not in haproxy.service's cgroup"},
		{PID: 903, PPID: 1, Class: procs.Ghost, Reason: "not in haproxy.service's cgroup"},
	}, Counts: procs.Counts{Current: 1, Ghost: 4}}
	all := []procs.KillResult{{PID: 900, Outcome: procs.Terminated}, {PID: 901, Outcome: procs.Killed},
		{PID: 902, Outcome: procs.Gone}, {PID: 903, Outcome: procs.Reused}}
	for _, tc := range []struct {
		name  string
		r     procs.Report
		kills []procs.KillResult
		want  []string
		not   []string
	}{
		{"all removed", r, all, []string{
			"killed:\n",
			"  900 terminated: exited after SIGTERM\n",
			"  901 killed: still running after the grace, exited after SIGKILL\n",
			"  902 gone: had already exited, not signalled\n",
			"  903 pid-reused: the pid now names another process, not signalled\n",
			"found 1 current, 0 draining, 4 ghost, 0 divergent\n",
			"after --kill: 4 of 4 ghosts removed, 0 ghost and 0 divergent remain: clean\n",
		}, []string{"needs attention", "ghosts found"}},
		{"one failed", r, []procs.KillResult{all[0], all[1], all[2], {PID: 903, Outcome: procs.Failed, Error: "operation not permitted"}}, []string{
			"  903 failed: still running: operation not permitted\n",
			"after --kill: 3 of 4 ghosts removed, 1 ghost and 0 divergent remain: a kill failed; needs a human\n",
		}, []string{": clean"}},
		{"divergent remains", procs.Report{Unit: "haproxy.service", MasterPID: 100, Processes: r.Processes[:2],
			Counts: procs.Counts{Current: 1, Ghost: 1, Divergent: 1}}, all[:1], []string{
			"after --kill: 1 of 1 ghost removed, 0 ghost and 1 divergent remain: needs attention (--kill never touches divergent processes; see docs/ghosts.md)\n",
		}, []string{": clean"}},
		{"nothing to kill", procs.Report{Unit: "haproxy.service", MasterPID: 100, Processes: r.Processes[:1],
			Counts: procs.Counts{Current: 1}}, []procs.KillResult{}, []string{
			"found 1 current, 0 draining, 0 ghost, 0 divergent\n",
			"after --kill: no ghost to kill, 0 ghost and 0 divergent remain: clean\n",
		}, []string{"killed:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printGhosts(&b, tc.r, tc.kills, true)
			out := b.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("human output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("human output has %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestGhostsJSONKills: --format json carries the kill outcomes in "kills"
// next to the issue-5 fields, with "error" always present; without
// --kill "kills" is an empty list.
func TestGhostsJSONKills(t *testing.T) {
	r := procs.Report{Unit: "haproxy.service", MasterPID: 100, Processes: []procs.Process{}, Counts: procs.Counts{Ghost: 2}}
	b, err := json.Marshal(ghostsJSON(r, []procs.KillResult{{PID: 900, Outcome: procs.Terminated},
		{PID: 901, Outcome: procs.Failed, Error: "operation not permitted"}}))
	if err != nil {
		t.Fatal(err)
	}
	want := `"kills":[{"pid":900,"outcome":"terminated","error":""},{"pid":901,"outcome":"failed","error":"operation not permitted"}]`
	if !strings.Contains(string(b), want) || !strings.HasPrefix(string(b), `{"unit":"haproxy.service","master_pid":100,"processes":[],"counts":{`) {
		t.Fatalf("json %s\nwant the report's fields, then %s", b, want)
	}
	b, _ = json.Marshal(ghostsJSON(r, nil))
	if !strings.Contains(string(b), `"kills":[]`) {
		t.Fatalf("without --kill: %s, want \"kills\":[]", b)
	}
}

// TestApplyGhostsFlags: flags override haguard.yaml; an explicit
// --settle 0 means no settle time, not "use the default".
func TestApplyGhostsFlags(t *testing.T) {
	cfg := config.Default()
	got := applyGhostsFlags(cfg, ghostsOpts{settle: 0, settleSet: true, grace: 3 * time.Second})
	if got.Sweep.Settle.D() != 0 || got.Sweep.KillGrace.D() != 3*time.Second {
		t.Fatalf("settle %v grace %v, want 0 and 3s", got.Sweep.Settle.D(), got.Sweep.KillGrace.D())
	}
	if got := applyGhostsFlags(cfg, ghostsOpts{}); got.Sweep.Settle != cfg.Sweep.Settle || got.Sweep.KillGrace != cfg.Sweep.KillGrace {
		t.Fatalf("no flags changed the config: %+v", got.Sweep)
	}
}

// TestGhostsCommandTier2 runs the command in-process against a master-worker
// haproxy started by hand (no systemd: its bus address points nowhere) and
// a ghost on the same port. Other haproxy processes may run on this host,
// so it looks only at its own PIDs and never passes --kill.
func TestGhostsCommandTier2(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t)))
	m := mastertest.Start(t, testbed.TCPProxyConfig(listen, testbed.TCPBackend(t)))
	ghost := mastertest.StartGhost(t, testbed.TCPProxyConfig(listen, testbed.DeadAddr(t)))
	none := filepath.Join(t.TempDir(), "no-bus")

	code, out, errOut := runHaguard(t, "ghosts", "--format", "json", "--bus-address", "unix:path="+none, "--master-socket", m.Socket)
	if code != exitNegative {
		t.Fatalf("exit %d with a ghost, want 1; stderr:\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "systemd unavailable for the sweep") {
		t.Errorf("stderr does not explain the missing systemd:\n%s", errOut)
	}
	var r procs.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, out)
	}
	if r.Unit != "haproxy.service" || int(r.MasterPID) != m.PID {
		t.Fatalf("unit %q master %d, want master %d", r.Unit, r.MasterPID, m.PID)
	}
	seen := map[procs.Class]int{}
	for _, p := range r.Processes {
		switch {
		case int(p.PID) == m.PID || int(p.PPID) == m.PID:
			if p.Class != procs.Current {
				t.Errorf("managed pid %d: %s (%s)", p.PID, p.Class, p.Reason)
			}
			seen[p.Class]++
		case int(p.PID) == ghost.PID:
			if p.Class != procs.Ghost || len(p.Listen) != 1 || p.Listen[0] != listen || p.Started == "" || !strings.Contains(p.Cmdline, "-db -f") {
				t.Errorf("ghost: %+v", p)
			}
			seen[p.Class]++
		}
	}
	if seen[procs.Current] != 2 || seen[procs.Ghost] != 1 {
		t.Fatalf("classes of this test's processes: %v", seen)
	}
}
