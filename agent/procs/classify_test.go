package procs

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/systemd"
)

const unitCG = "/system.slice/haproxy.service"

var (
	t0  = time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)
	now = t0.Add(time.Hour)
)

func unit() systemd.Unit {
	return systemd.Unit{Name: "haproxy.service", MainPID: 100, ControlGroup: unitCG, ActiveState: "active", SubState: "running"}
}

// proc builds a table row; started is minutes after t0.
func proc(pid, ppid int32, cg string, started int, listen ...string) Proc {
	return Proc{
		PID: pid, PPID: ppid, Comm: "haproxy", Exe: "/usr/sbin/haproxy",
		Cmdline:    []string{"/usr/sbin/haproxy", "-Ws", "-f", "/etc/haproxy/haproxy.cfg"},
		Created:    t0.Add(time.Duration(started) * time.Minute),
		StartTicks: uint64(1000 + started*6000), CgroupUnified: cg, Listen: listen,
	}
}

func parseSP(t *testing.T, text string) *master.ShowProc {
	t.Helper()
	sp, err := master.ParseShowProc(text)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

type want struct {
	class  Class
	gen    int
	reason string // a substring
}

func check(t *testing.T, r Report, wants map[int32]want) {
	t.Helper()
	if len(r.Processes) != len(wants) {
		t.Fatalf("got %d processes, want %d: %+v", len(r.Processes), len(wants), r.Processes)
	}
	var c Counts
	for _, p := range r.Processes {
		w, ok := wants[p.PID]
		if !ok {
			t.Fatalf("unexpected pid %d", p.PID)
		}
		if p.Class != w.class || p.Generation != w.gen || !strings.Contains(p.Reason, w.reason) {
			t.Errorf("pid %d: got %s gen %d %q; want %s gen %d reason containing %q", p.PID, p.Class, p.Generation, p.Reason, w.class, w.gen, w.reason)
		}
		if p.Reason == "" {
			t.Errorf("pid %d has no reason", p.PID)
		}
		c.add(w.class)
	}
	if r.Counts != c {
		t.Errorf("counts %+v, want %+v", r.Counts, c)
	}
}

const sp26 = `#<PID>          <type>          <reloads>       <uptime>        <version>
100             master          2 [failed: 0]   0d01h00m00s     2.6.12
# workers
120             worker          0               0d00h00m10s     2.6.12
# old workers
110             worker          1               0d00h30m00s     2.6.12
# programs
`

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		unit   systemd.Unit
		sp     string
		procs  []Proc
		settle time.Duration
		now    time.Time
		want   map[int32]want
		// unsettled is a substring of Report.Unsettled ("": settled).
		unsettled string
	}{
		{
			name: "clean: master and newest worker",
			sp:   sp26,
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(120, 100, unitCG, 59, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				100: {Current, 2, "master of haproxy.service (MainPID), at reload 2"},
				120: {Current, 2, "worker of the newest generation 2"},
			},
		},
		{
			name: "ghost on the same port, started by hand",
			sp:   sp26,
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(120, 100, unitCG, 59, "127.0.0.1:3307"),
				proc(900, 1, "/user.slice/user-0.slice/session-3.scope", -83*24*60, "127.0.0.1:3307"),
				proc(901, 1, "/..", -10, "127.0.0.1:9999"),
				proc(902, 901, "/..", -10),
			},
			want: map[int32]want{
				100: {Current, 2, "master"},
				120: {Current, 2, "newest generation"},
				900: {Ghost, 0, "LISTENs on 127.0.0.1:3307, which the managed haproxy also serves"},
				901: {Ghost, 0, "LISTENs on 127.0.0.1:9999"},
				902: {Ghost, 0, "not in haproxy.service's cgroup /system.slice/haproxy.service (its own: /..) and not a descendant of its master 100"},
			},
		},
		{
			name: "draining: old worker without listeners",
			sp:   sp26,
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(110, 100, unitCG, 30),
				proc(120, 100, unitCG, 59, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				100: {Current, 2, "master"},
				110: {Draining, 1, "an old worker of generation 1 (master 100 at reload 2); no LISTEN socket: finishing its connections"},
				120: {Current, 2, "newest"},
			},
		},
		{
			name:   "old worker still listening within the settle time",
			sp:     sp26,
			settle: 5 * time.Second,
			now:    t0.Add(59*time.Minute + 2*time.Second),
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(110, 100, unitCG, 30, "127.0.0.1:3307"),
				proc(120, 100, unitCG, 59, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				100: {Current, 2, "master"},
				110: {Draining, 1, "only 2s ago (settle 5s): releasing its listeners"},
				120: {Current, 2, "newest"},
			},
		},
		{
			name:   "old worker still listening after the settle time",
			sp:     sp26,
			settle: 5 * time.Second,
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(110, 100, unitCG, 30, "127.0.0.1:3307"),
				proc(120, 100, unitCG, 59, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				100: {Current, 2, "master"},
				110: {Divergent, 1, "still LISTENs on 127.0.0.1:3307 1m0s after the newest worker started (settle 5s)"},
				120: {Current, 2, "newest"},
			},
		},
		{
			name: "2.6 failed reload: the serving worker is of an older generation",
			sp: `#<PID> <type> <reloads> <uptime> <version>
100 master 3 [failed: 1] 0d01h00m00s 2.6.12
# workers
120 worker 1 0d00h00m10s 2.6.12
# programs
`,
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(120, 100, unitCG, 59, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				100: {Current, 3, "master"},
				120: {Divergent, 2, "the last reload failed (failed: 1): this worker of generation 2 still serves the config from before it"},
			},
		},
		{
			name: "2.6 reload in progress: not yet a failure",
			sp: `#<PID> <type> <reloads> <uptime> <version>
100 master 3 [failed: 0] 0d01h00m00s 2.6.12
# workers
120 worker 1 0d00h00m10s 2.6.12
`,
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(120, 100, unitCG, 59, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				100: {Current, 3, "master"},
				120: {Current, 2, "the reload to 3 is in progress"},
			},
			unsettled: "the reload to generation 3 is in progress",
		},
		{
			name: "a worker forked after show proc was read",
			sp:   sp26,
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(110, 100, unitCG, 30),
				proc(120, 100, unitCG, 58, "127.0.0.1:3307"),
				proc(130, 100, unitCG, 59, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				100: {Current, 2, "master"},
				110: {Draining, 1, "an old worker of generation 1"},
				120: {Current, 2, "newest generation"},
				130: {Current, 2, "started after `show proc` was read"},
			},
			unsettled: "worker 130 of master 100 started after `show proc` was read",
		},
		{
			name: "3.x failed reload: the old worker keeps listening, no current worker",
			sp: `#<PID> <type> <reloads> <uptime> <version>
100 master 5 [failed: 1] 0d01h00m00s 3.2.4
# workers
# old workers
150 worker 1 0d00h10m00s 3.2.4
`,
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(150, 100, unitCG, 50, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				100: {Current, 5, "master"},
				150: {Divergent, 4, "the last reload failed (failed: 1) and no new worker runs"},
			},
		},
		{
			name: "executable deleted: upgraded, not restarted",
			sp:   sp26,
			procs: func() []Proc {
				m := proc(100, 1, unitCG, 0)
				m.Exe += " (deleted)"
				w := proc(120, 100, unitCG, 59, "127.0.0.1:3307")
				w.Exe += " (deleted)"
				return []Proc{m, w}
			}(),
			want: map[int32]want{
				100: {Divergent, 2, "its executable /usr/sbin/haproxy was deleted or replaced"},
				120: {Divergent, 2, "deleted or replaced"},
			},
		},
		{
			name: "in the unit's cgroup but not below the master",
			unit: func() systemd.Unit { u := unit(); u.ControlPID = 130; return u }(),
			sp:   sp26,
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(120, 100, unitCG, 59, "127.0.0.1:3307"),
				proc(130, 1, unitCG, 59),
				proc(140, 1, unitCG, 20, "127.0.0.1:3307"),
				proc(141, 1, unitCG, 20),
			},
			want: map[int32]want{
				100: {Current, 2, "master"},
				120: {Current, 2, "newest"},
				130: {Current, 0, "control process of haproxy.service"},
				140: {Divergent, 0, "in haproxy.service's cgroup but is not a descendant of master 100 (an orphan of an earlier master?); still LISTENs"},
				141: {Draining, 0, "in haproxy.service's cgroup but is not a descendant of master 100; no LISTEN socket"},
			},
		},
		{
			name: "no master CLI: generations from start order",
			procs: []Proc{
				proc(100, 1, unitCG, 0),
				proc(110, 100, unitCG, 30),
				proc(120, 100, unitCG, 59, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				100: {Current, 2, "master of haproxy.service (MainPID)"},
				110: {Draining, 0, "an older worker of master 100 (by start time; master CLI unavailable); no LISTEN socket"},
				120: {Current, 1, "newest worker of master 100 (by start time"},
			},
			unsettled: "the master CLI did not answer `show proc`",
		},
		{
			name: "no systemd: the master comes from show proc",
			unit: systemd.Unit{Name: "haproxy.service"},
			sp:   sp26,
			procs: []Proc{
				proc(100, 1, "/", 0),
				proc(120, 100, "/", 59, "127.0.0.1:3307"),
				proc(900, 1, "/", 1, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				100: {Current, 2, "master"},
				120: {Current, 2, "newest"},
				900: {Ghost, 0, "haproxy.service's cgroup is unknown and not a descendant of its master 100"},
			},
		},
		{
			name: "cgroup v1 hybrid host: the name=systemd hierarchy decides",
			sp:   sp26,
			procs: func() []Proc {
				m := proc(100, 1, "/", 0)
				m.CgroupSystemd = unitCG
				o := proc(160, 1, "/", 1)
				o.CgroupSystemd = unitCG + "/sub"
				g := proc(900, 1, "/", 1)
				g.CgroupSystemd = "/user.slice"
				return []Proc{m, o, g}
			}(),
			want: map[int32]want{
				100: {Current, 2, "master"},
				160: {Draining, 0, "in haproxy.service's cgroup"},
				900: {Ghost, 0, "(its own: /user.slice)"},
			},
		},
		{
			name: "unit stopped: every haproxy is a ghost",
			unit: systemd.Unit{Name: "haproxy.service", ControlGroup: unitCG, ActiveState: "inactive"},
			procs: []Proc{
				proc(900, 1, "/user.slice", 1, "127.0.0.1:3307"),
			},
			want: map[int32]want{
				900: {Ghost, 0, "and haproxy.service has no master process"},
			},
		},
		{
			name: "descendant through a non-haproxy parent (ancestors)",
			sp:   sp26,
			procs: func() []Proc {
				w := proc(170, 165, "/", 59)
				w.Ancestors = []int32{100, 1}
				return []Proc{proc(100, 1, unitCG, 0), w}
			}(),
			want: map[int32]want{
				100: {Current, 2, "master"},
				170: {Draining, 0, "a child of master 100 that `show proc` does not list"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.unit
			if u.Name == "" {
				u = unit()
			}
			in := Input{Unit: u, Procs: tc.procs, Settle: tc.settle, Now: tc.now}
			if in.Now.IsZero() {
				in.Now = now
			}
			if tc.sp != "" {
				in.ShowProc = parseSP(t, tc.sp)
			}
			r := Classify(in)
			check(t, r, tc.want)
			if (tc.unsettled == "") != (r.Unsettled == "") || !strings.Contains(r.Unsettled, tc.unsettled) {
				t.Errorf("unsettled %q, want %q", r.Unsettled, tc.unsettled)
			}
		})
	}
}

// The JSON document is the contract of `haguard ghosts --format json`.
func TestReportJSONContract(t *testing.T) {
	r := Classify(Input{Unit: unit(), ShowProc: parseSP(t, sp26), Now: now, Procs: []Proc{
		proc(100, 1, unitCG, 0),
		proc(900, 1, "/..", 1, "127.0.0.1:3307"),
	}})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if got := keys(doc); !reflect.DeepEqual(got, []string{"counts", "master_pid", "processes", "unit"}) {
		t.Fatalf("top-level keys %v", got)
	}
	if got := keys(doc["counts"].(map[string]any)); !reflect.DeepEqual(got, []string{"conflict", "current", "divergent", "draining", "foreign", "ghost", "other_unit"}) {
		t.Fatalf("counts keys %v", got)
	}
	procs := doc["processes"].([]any)
	p0 := procs[0].(map[string]any)
	if got := keys(p0); !reflect.DeepEqual(got, []string{"cgroup", "class", "cmdline", "exe", "generation", "listen", "netns", "pid", "ppid", "reason", "started", "unit"}) {
		t.Fatalf("process keys %v", got)
	}
	if p0["listen"] == nil {
		t.Fatal(`"listen" must be [] rather than null`)
	}
	if p0["started"] != "2026-11-28T01:00:00Z" || p0["cmdline"] != "/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg" {
		t.Fatalf("started/cmdline: %v / %v", p0["started"], p0["cmdline"])
	}
	if _, err := time.Parse(time.RFC3339, p0["started"].(string)); err != nil {
		t.Fatal(err)
	}
	if p0["unit"] != "haproxy.service" || procs[1].(map[string]any)["unit"] != "" {
		t.Fatalf("unit: %v / %v", p0["unit"], procs[1].(map[string]any)["unit"])
	}
	if doc["master_pid"].(float64) != 100 || doc["unit"] != "haproxy.service" {
		t.Fatalf("%v", doc)
	}

	empty, _ := json.Marshal(Classify(Input{Unit: unit(), Now: now}))
	if !strings.Contains(string(empty), `"processes":[]`) {
		t.Fatalf("empty sweep: %s", empty)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestClassifySaysWhenSocketsAreUnknown(t *testing.T) {
	g := proc(900, 1, "/user.slice", 1)
	g.ListenErr = "read sockets: permission denied"
	r := Classify(Input{Unit: unit(), Now: now, Procs: []Proc{proc(100, 1, unitCG, 0), g}})
	if p := r.Processes[1]; p.Class != Ghost || !strings.Contains(p.Reason, "its listening sockets are not all known (read sockets: permission denied)") {
		t.Fatalf("%+v", p)
	}
}
