package procs

import (
	"context"
	"strings"
	"testing"

	"github.com/haguard/haguard/systemd"
)

// killAll runs the fake killer over every process of r of class c and
// returns the results and the signals that were sent.
func killAll(t *testing.T, r Report, ps []Process) ([]KillResult, []string) {
	t.Helper()
	f := &fakeHost{start: map[int32]uint64{}, onTerm: map[int32]bool{}}
	for _, p := range r.Processes {
		f.start[p.PID] = p.StartTicks
		f.onTerm[p.PID] = true
	}
	res := newFakeKiller(f).Kill(context.Background(), ps)
	f.mu.Lock()
	defer f.mu.Unlock()
	return res, append([]string(nil), f.sent...)
}

// TestKillRefusedWithoutTheCgroupAnchor: when systemd did not answer (or
// the unit has no cgroup), the ghost test is only "not below the master
// the master CLI names", and that socket may even belong to a hand-started
// haproxy. The unit's own processes can then look like ghosts, so nothing
// is signalled: the kill fails safe and says why.
func TestKillRefusedWithoutTheCgroupAnchor(t *testing.T) {
	for _, tc := range []struct {
		name string
		unit systemd.Unit
	}{
		{"systemd unreachable", systemd.Unit{Name: "haproxy.service"}},
		{"unit without a cgroup", systemd.Unit{Name: "haproxy.service", ActiveState: "inactive"}},
		{"MainPID not visible here (another PID namespace)", func() systemd.Unit { u := unit(); u.MainPID = 4242; return u }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 100 is the master the master CLI names; 160 is an orphaned
			// worker of the unit (its cgroup), not below 100.
			r := Classify(Input{Unit: tc.unit, ShowProc: parseSP(t, sp26), Now: now, Procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(120, 100, unitCG, 59, "127.0.0.1:3307"),
				proc(160, 1, unitCG, 1),
				proc(900, 1, "/user.slice", 1, "127.0.0.1:3307"),
			}})
			ghosts := r.Of(Ghost)
			if len(ghosts) == 0 {
				t.Fatalf("no ghost to try the kill on: %+v", r.Processes)
			}
			res, sent := killAll(t, r, ghosts)
			if len(sent) != 0 {
				t.Fatalf("signals sent without the cgroup anchor: %v", sent)
			}
			for _, k := range res {
				if k.Outcome != Failed || !strings.Contains(k.Error, "not signalled") {
					t.Errorf("pid %d: %s %q, want failed, not signalled", k.PID, k.Outcome, k.Error)
				}
			}
		})
	}
}

// TestKillNeverHitsTheServingProcesses: Kill is also handed divergent
// processes (reload's --kill-ghosts); the master and the workers that
// serve now are never among the ones it signals, whatever their class
// (an upgraded binary or a failed reload makes them divergent), and a
// current or draining process is refused whoever asks.
func TestKillNeverHitsTheServingProcesses(t *testing.T) {
	m := proc(100, 1, unitCG, 0)
	m.Exe += " (deleted)"
	w := proc(120, 100, unitCG, 59, "127.0.0.1:3307")
	w.Exe += " (deleted)"
	old := proc(110, 100, unitCG, 30, "127.0.0.1:3307")
	drain := proc(111, 100, unitCG, 20)
	ghost := proc(900, 1, "/user.slice", 1, "127.0.0.1:3307")
	r := Classify(Input{Unit: unit(), ShowProc: parseSP(t, sp26), Now: now,
		Procs: []Proc{m, w, old, drain, ghost}})
	byPID := map[int32]Process{}
	for _, p := range r.Processes {
		byPID[p.PID] = p
	}
	if byPID[100].Class != Divergent || byPID[120].Class != Divergent || byPID[110].Class != Divergent {
		t.Fatalf("setup: %+v", r.Processes)
	}
	res, sent := killAll(t, r, r.Processes)
	want := map[int32]Outcome{100: Failed, 120: Failed, 110: Terminated, 111: Failed, 900: Terminated}
	for _, k := range res {
		if k.Outcome != want[k.PID] {
			t.Errorf("pid %d (%s): %s %q, want %s", k.PID, byPID[k.PID].Class, k.Outcome, k.Error, want[k.PID])
		}
	}
	for _, s := range sent {
		if !strings.HasPrefix(s, "110:") && !strings.HasPrefix(s, "900:") {
			t.Errorf("signalled a serving or draining process: %v", sent)
		}
	}
}

// TestKillRefusesTheFailedReloadsOnlyWorker: after a failed reload the
// old worker that still listens is divergent, but it is the only one
// serving: killing it is an outage.
func TestKillRefusesTheFailedReloadsOnlyWorker(t *testing.T) {
	r := Classify(Input{Unit: unit(), Now: now, ShowProc: parseSP(t, `#<PID> <type> <reloads> <uptime> <version>
100 master 5 [failed: 1] 0d01h00m00s 3.2.4
# workers
# old workers
150 worker 1 0d00h10m00s 3.2.4
`), Procs: []Proc{proc(100, 1, unitCG, 0), proc(150, 100, unitCG, 50, "127.0.0.1:3307")}})
	res, sent := killAll(t, r, r.Of(Divergent))
	if len(res) != 1 || res[0].Outcome != Failed || len(sent) != 0 {
		t.Fatalf("the only serving worker was signalled: %+v, sent %v", res, sent)
	}
}

// TestShowProcOfAnotherMaster: the master CLI socket answered for another
// haproxy (a hand-started one bound the same socket path), so its `show
// proc` says nothing about systemd's MainPID. It must not decide the
// generations of the unit's workers: the unit's newest worker stays
// current (and is never signalled), the other master's tree is ghost.
func TestShowProcOfAnotherMaster(t *testing.T) {
	r := Classify(Input{Unit: unit(), Now: now, Settle: 0, ShowProc: parseSP(t, `#<PID> <type> <reloads> <uptime> <version>
700 master 0 [failed: 0] 0d00h10m00s 2.6.12
# workers
710 worker 0 0d00h01m00s 2.6.12
# old workers
`), Procs: []Proc{
		proc(100, 1, unitCG, 0),
		proc(110, 100, unitCG, 10),
		proc(120, 100, unitCG, 30, "127.0.0.1:3307"),
		proc(700, 1, "/user.slice", 40, "127.0.0.1:3307"),
		proc(710, 700, "/user.slice", 50, "127.0.0.1:3307"),
	}})
	check(t, r, map[int32]want{
		100: {Current, 2, "master"},
		110: {Draining, 0, "older worker of master 100"},
		120: {Current, 1, "newest worker"},
		700: {Ghost, 0, "not in haproxy.service's cgroup"},
		710: {Ghost, 0, "not in haproxy.service's cgroup"},
	})
	for _, p := range r.Processes {
		if p.PID == 120 && p.NoKill == "" {
			t.Errorf("the unit's serving worker may be killed: %+v", p)
		}
	}
}

// TestNoMasterKnownKeepsTheUnitsProcesses: systemd gives the cgroup but
// no MainPID, and the master CLI answers for a hand-started haproxy
// outside the unit. The unit's listening processes are not below that
// master, but they may be all that serves: never signalled; the outside
// master's tree is ghost, not managed.
func TestNoMasterKnownKeepsTheUnitsProcesses(t *testing.T) {
	u := unit()
	u.MainPID = 0
	r := Classify(Input{Unit: u, Now: now, ShowProc: parseSP(t, `#<PID> <type> <reloads> <uptime> <version>
700 master 0 [failed: 0] 0d00h10m00s 2.6.12
# workers
710 worker 0 0d00h01m00s 2.6.12
# old workers
`), Procs: []Proc{
		proc(120, 1, unitCG, 30, "127.0.0.1:3307"),
		proc(700, 1, "/user.slice", 40),
		proc(710, 700, "/user.slice", 50, "127.0.0.1:3307"),
	}})
	for _, p := range r.Processes {
		switch {
		case p.PID == 120 && p.NoKill == "":
			t.Errorf("a listening process of the unit may be killed while no master is known: %+v", p)
		case p.PID != 120 && p.Class != Ghost:
			t.Errorf("pid %d outside the unit: %s (%s)", p.PID, p.Class, p.Reason)
		}
	}
}
