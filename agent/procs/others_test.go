package procs

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/haguard/haguard/agent/netns"
)

const (
	hostNS  netns.ID = 4026531840
	otherNS netns.ID = 4026532999
)

// inNS sets p's network namespace.
func inNS(p Proc, ns netns.ID) Proc { p.Netns = ns; return p }

// managedPair is the unit's master and current worker, listening on
// 127.0.0.1:3307 (TCP) and 127.0.0.1:443/udp (a QUIC bind), in the
// host's namespace.
func managedPair() []Proc {
	return []Proc{
		inNS(proc(100, 1, unitCG, 0, "127.0.0.1:443/udp"), hostNS),
		inNS(proc(120, 100, unitCG, 30, "127.0.0.1:3307", "127.0.0.1:443/udp"), hostNS),
	}
}

const sp1 = `#<PID>          <type>          <reloads>       <uptime>        <version>
100             master          0 [failed: 0]   0d01h00m00s     2.6.12
# workers
120             worker          0               0d00h30m00s     2.6.12
`

// TestClassifyOthers: the processes that are not the unit's. The
// namespace decides whether a listener shares traffic; a cgroup decides
// whose it is.
func TestClassifyOthers(t *testing.T) {
	base := map[int32]want{
		100: {Current, 0, "master of haproxy.service"},
		120: {Current, 0, "worker of the newest generation"},
	}
	for _, tc := range []struct {
		name     string
		p        Proc
		class    Class
		reason   []string
		unit     string
		selfNS   netns.ID // Input.Netns
		noMaster bool     // the master's namespace is unknown
	}{
		{name: "another unit, other address", p: inNS(proc(900, 1, "/system.slice/haproxy@second.service", 1, "127.0.0.1:8443"), hostNS),
			class: OtherUnit, unit: "haproxy@second.service",
			reason: []string{"belongs to haproxy@second.service (cgroup /system.slice/haproxy@second.service)", "LISTENs on 127.0.0.1:8443", "never signalled"}},
		{name: "another unit's worker, no socket", p: inNS(proc(901, 900, "/system.slice/haproxy@second.service", 1), hostNS),
			class: OtherUnit, unit: "haproxy@second.service", reason: []string{"no listening socket"}},
		{name: "another unit on our address", p: inNS(proc(902, 1, "/system.slice/haproxy@second.service", 1, "127.0.0.1:3307"), hostNS),
			class: Conflict, unit: "haproxy@second.service",
			reason: []string{"LISTENs on 127.0.0.1:3307, which haproxy.service also listens on in the same network namespace (net:[4026531840])", "stop haproxy@second.service (systemctl stop haproxy@second.service)"}},
		{name: "another unit on our QUIC port", p: inNS(proc(903, 1, "/system.slice/haproxy@second.service", 1, "127.0.0.1:443/udp"), hostNS),
			class: Conflict, unit: "haproxy@second.service", reason: []string{"LISTENs on 127.0.0.1:443/udp"}},
		{name: "TCP on our UDP port shares nothing", p: inNS(proc(904, 1, "/system.slice/haproxy@second.service", 1, "127.0.0.1:443"), hostNS),
			class: OtherUnit, unit: "haproxy@second.service"},
		{name: "another unit on our address in another namespace", p: inNS(proc(905, 1, "/system.slice/haproxy@second.service", 1, "127.0.0.1:3307"), otherNS),
			class: Foreign, unit: "haproxy@second.service",
			reason: []string{"in another network namespace (net:[4026532999], of unit haproxy@second.service; haproxy.service runs in net:[4026531840])", "cannot take haproxy.service's connections"}},
		{name: "a hand-started haproxy in another namespace", p: inNS(proc(906, 1, "/user.slice/user-0.slice/session-3.scope", 1, "127.0.0.1:3307"), otherNS),
			class: Foreign, unit: "session-3.scope", reason: []string{"in another network namespace (net:[4026532999];"}},
		{name: "a ghost in our namespace", p: inNS(proc(907, 1, "/user.slice/user-0.slice/session-3.scope", 1, "127.0.0.1:3307"), hostNS),
			class: Ghost, unit: "session-3.scope", reason: []string{"which the managed haproxy also serves in the same network namespace: it takes a share"}},
		{name: "a ghost whose namespace is unknown shares", p: proc(908, 1, "/..", 1, "127.0.0.1:3307"),
			class: Ghost, reason: []string{"takes a share"}},
		{name: "a ghost on our QUIC port", p: inNS(proc(909, 1, "/", 1, "127.0.0.1:443/udp"), hostNS),
			class: Ghost, reason: []string{"LISTENs on 127.0.0.1:443/udp, which the managed haproxy also serves"}},
		{name: "docker, own namespace, same port", p: inNS(proc(910, 1, "/system.slice/docker-4f1e2d.scope", 1, "127.0.0.1:3307"), otherNS),
			class: Foreign, unit: "docker-4f1e2d.scope", reason: []string{"in container docker-4f1e2d.scope;"}},
		{name: "docker, host network, other port", p: inNS(proc(911, 1, "/system.slice/docker-4f1e2d.scope", 1, "0.0.0.0:80"), hostNS),
			class: Foreign, unit: "docker-4f1e2d.scope", reason: []string{"in container docker-4f1e2d.scope (cgroup /system.slice/docker-4f1e2d.scope), in haproxy.service's network namespace", "the container runtime owns it"}},
		{name: "docker, host network, our port", p: inNS(proc(912, 1, "/system.slice/docker-4f1e2d.scope", 1, "127.0.0.1:3307"), hostNS),
			class: Conflict, unit: "docker-4f1e2d.scope", reason: []string{"stop container docker-4f1e2d.scope"}},
		{name: "kubernetes", p: inNS(proc(913, 1, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a.slice/cri-containerd-77.scope", 1), hostNS),
			class: Foreign, unit: "cri-containerd-77.scope"},
		{name: "user unit named like ours", p: inNS(proc(914, 1, "/user.slice/user-1000.slice/user@1000.service/app.slice/haproxy.service", 1), hostNS),
			class: OtherUnit, unit: "haproxy.service", reason: []string{"belongs to haproxy.service (cgroup /user.slice/user-1000.slice/user@1000.service/app.slice/haproxy.service), another unit"}},
		{name: "a terminal in a user session", p: inNS(proc(915, 1, "/user.slice/user-1000.slice/user@1000.service/app.slice/app-term-1.scope", 1), hostNS),
			class: Ghost, unit: "app-term-1.scope"},
		{name: "reference namespace from a managed worker", p: inNS(proc(916, 1, "/", 1, "127.0.0.1:3307"), otherNS),
			class: Foreign, noMaster: true, reason: []string{"haproxy.service runs in net:[4026531840]"}},
		{name: "haguard's own namespace when no managed one is known", p: inNS(proc(917, 1, "/", 1), otherNS),
			class: Foreign, noMaster: true, selfNS: hostNS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := append(managedPair(), tc.p)
			if tc.noMaster {
				ps[0].Netns = 0
				if tc.selfNS != 0 {
					ps[1].Netns = 0
				}
			}
			r := Classify(Input{Unit: unit(), ShowProc: parseSP(t, sp1), Now: now, Procs: ps, Netns: tc.selfNS})
			wants := map[int32]want{tc.p.PID: {tc.class, 0, ""}}
			for k, v := range base {
				wants[k] = v
			}
			check(t, r, wants)
			got := r.Processes[2]
			for _, s := range tc.reason {
				if !strings.Contains(got.Reason, s) {
					t.Errorf("reason %q\n lacks %q", got.Reason, s)
				}
			}
			if tc.unit != "" && got.Unit != tc.unit {
				t.Errorf("unit %q, want %q", got.Unit, tc.unit)
			}
			if got.Netns != uint64(tc.p.Netns) {
				t.Errorf("netns %d, want %d", got.Netns, tc.p.Netns)
			}
			if v := r.Victims(true); len(v) > 0 && tc.class != Ghost {
				t.Errorf("a %s process is a victim: %+v", tc.class, v)
			}
			if clean := r.Clean(); clean == (tc.class == Ghost || tc.class == Conflict) {
				t.Errorf("Clean() = %v with a %s", clean, tc.class)
			}
		})
	}
}

// TestOurUnitNameWithoutItsCgroup: when systemd gave no cgroup, a process
// in a cgroup named like the unit is not "another unit": it may be the
// unit's own orphan, so it stays a ghost (and Kill refuses it without the
// anchor).
func TestOurUnitNameWithoutItsCgroup(t *testing.T) {
	u := unit()
	u.ControlGroup = ""
	r := Classify(Input{Unit: u, ShowProc: parseSP(t, sp1), Now: now, Procs: append(managedPair(),
		inNS(proc(900, 1, unitCG, 1, "127.0.0.1:3307"), hostNS),
		inNS(proc(901, 1, "/system.slice/haproxy@b.service", 1, "127.0.0.1:3307"), hostNS))})
	byPID := map[int32]Process{}
	for _, p := range r.Processes {
		byPID[p.PID] = p
	}
	if byPID[900].Class != Ghost || byPID[900].NoKill == "" {
		t.Errorf("our unit's orphan: %+v", byPID[900])
	}
	if byPID[901].Class != Conflict {
		t.Errorf("another unit on our address: %+v", byPID[901])
	}
}

func TestOwnerOf(t *testing.T) {
	for cg, want := range map[string]owner{
		"/":                                     {},
		"/..":                                   {},
		"/../..":                                {},
		"/system.slice/haproxy.service":         {unit: "haproxy.service"},
		"/system.slice/haproxy@second.service":  {unit: "haproxy@second.service"},
		"/system.slice/foo.service/payload/sub": {unit: "foo.service"},
		"/user.slice/user-0.slice/session-3.scope":                              {unit: "session-3.scope"},
		"/system.slice/docker-4f1e.scope":                                       {unit: "docker-4f1e.scope", container: "docker-4f1e.scope"},
		"/docker/4f1e2d":                                                        {container: "docker/4f1e2d"},
		"/machine.slice/libpod-77.scope/container":                              {unit: "libpod-77.scope", container: "libpod-77.scope"},
		"/libpod_parent/libpod-77":                                              {container: "libpod_parent/libpod-77"},
		"/machine.slice/machine-web.scope/payload/system.slice/haproxy.service": {unit: "haproxy.service", container: "machine-web.scope"},
		"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/crio-9.scope": {unit: "crio-9.scope", container: "crio-9.scope"},
		"/kubepods/burstable/pod1/77":                   {container: "kubepods"},
		"/lxc.payload.web/system.slice/haproxy.service": {unit: "haproxy.service", container: "lxc.payload.web"},
		"/lxc/web":                         {container: "lxc/web"},
		"/machine.slice":                   {container: "machine.slice"},
		"/system.slice/containerd.service": {unit: "containerd.service"},
	} {
		if got := ownerOf(cg); got != want {
			t.Errorf("%s: %+v, want %+v", cg, got, want)
		}
	}
}

func TestCountsByClass(t *testing.T) {
	c := Counts{Current: 2, Draining: 1, Ghost: 3, Divergent: 4, OtherUnit: 5, Foreign: 6, Conflict: 7}
	want := map[string]int{"current": 2, "draining": 1, "ghost": 3, "divergent": 4, "other-unit": 5, "foreign": 6, "conflict": 7}
	if got := c.ByClass(); !reflect.DeepEqual(got, want) {
		t.Fatalf("%v", got)
	}
	var r Counts
	for _, cl := range Classes {
		r.add(cl)
	}
	for _, cl := range Classes {
		if r.Of(cl) != 1 {
			t.Errorf("%s not counted once: %+v", cl, r)
		}
	}
}

// TestKillRefusesOthers: whatever a caller hands the Killer, another
// unit's, another namespace's or a container's haproxy gets no signal,
// and the refusal says why.
func TestKillRefusesOthers(t *testing.T) {
	f := &fakeHost{start: map[int32]uint64{900: 9, 901: 9, 902: 9}, onTerm: map[int32]bool{900: true, 901: true, 902: true}}
	k := newFakeKiller(f)
	res := k.Kill(context.Background(), []Process{
		{PID: 900, Class: OtherUnit, Unit: "haproxy@second.service", StartTicks: 9},
		{PID: 901, Class: Conflict, Unit: "haproxy@second.service", StartTicks: 9},
		{PID: 902, Class: Foreign, Unit: "docker-4f.scope", StartTicks: 9},
	})
	if len(f.sent) != 0 {
		t.Fatalf("signals sent: %v", f.sent)
	}
	for _, r := range res {
		if r.Outcome != Failed || !strings.HasPrefix(r.Error, "not signalled") {
			t.Errorf("%+v", r)
		}
	}
	if !strings.Contains(res[1].Error, "haproxy@second.service") {
		t.Errorf("the conflict's refusal does not name the unit: %s", res[1].Error)
	}
	if slices.ContainsFunc(res, func(r KillResult) bool { return r.Outcome == Terminated }) {
		t.Fatal("terminated")
	}
}
