package runtime

import (
	"strings"
	"testing"
)

func TestParseServersState(t *testing.T) {
	out := `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 be 1 s1 127.0.0.1 2 8 5 10 4 1 0 0 0 0 0 0 - 41234 - 0 0 - - 0
3 be 2 s2 127.0.0.1 0 5 10 10 4 1 0 0 0 0 0 0 - 9 - 0 0 - - 0
`
	ss, err := ParseServersState(out)
	if err != nil || len(ss) != 2 {
		t.Fatalf("%+v %v", ss, err)
	}
	if s := ss[0]; s.State != StateDrain || !s.Up || s.Weight != 5 || s.InitWeight != 10 || s.Port != 41234 {
		t.Errorf("s1: %+v", s)
	}
	if s := ss[1]; s.State != StateMaint || s.Up || s.Port != 9 {
		t.Errorf("s2: %+v", s)
	}
	if stateOf(4) != StateReady || stateOf(5) != StateMaint {
		t.Error("CMAINT alone (a disabled server set ready) is not maint")
	}
	if _, err := ParseServersState("1\n3 be 1 s1\n"); err == nil {
		t.Error("a short line parsed")
	}
}

func TestCountSessions(t *testing.T) {
	out := "0x1: proto=tcpv4 src=127.0.0.1:1 fe=fe be=be srv=s1 ts=00\n0x2: proto=tcpv4 fe=fe be=be srv=s10 ts=00\n0x3: proto=unix_stream fe=GLOBAL be=<NONE> srv=<none> ts=00\n"
	if n := CountSessions(out, "be", "s1"); n != 1 {
		t.Fatalf("%d", n)
	}
}

func TestEditServerAndMap(t *testing.T) {
	cfg := "global\n\tmaxconn 10\nbackend other\n\tserver s1 10.0.0.9:80\nbackend be\n\tserver s0 10.0.0.2:80\n\tserver s1 10.0.0.1:80 check weight 10 # main\n"
	files := map[string][]byte{"/c.cfg": []byte(cfg)}
	read := func(p string) ([]byte, bool) { b, ok := files[p]; return b, ok }
	w := 3
	got, err := EditServer([]string{"/c.cfg"}, read, ServerChange{Backend: "be", Server: "s1", State: StateMaint, Weight: &w, Addr: "10.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	want := "global\n\tmaxconn 10\nbackend other\n\tserver s1 10.0.0.9:80\nbackend be\n\tserver s0 10.0.0.2:80\n\tserver s1 10.0.0.5:80 check weight 3 disabled # main\n"
	if string(got["/c.cfg"]) != want {
		t.Fatalf("got\n%s", got["/c.cfg"])
	}
	files["/c.cfg"] = got["/c.cfg"]
	got, _ = EditServer([]string{"/c.cfg"}, read, ServerChange{Backend: "be", Server: "s1", State: StateReady, Addr: "10.0.0.6", Port: 81})
	if s := ParseServerLine(mustFind(t, got["/c.cfg"]).Fields); s.Disabled || s.Addr != "10.0.0.6" || s.Port != 81 || s.Weight != 3 {
		t.Fatalf("%+v", s)
	}
	if _, err := EditServer([]string{"/c.cfg"}, read, ServerChange{Backend: "be", Server: "nope", State: StateMaint}); err == nil {
		t.Fatal("edited a missing server")
	}
	m := []byte("# hosts\na 1\nb 2\n")
	for _, tc := range []struct {
		c    MapChange
		want string
	}{
		{MapChange{Op: MapAdd, Key: "c", Value: "3"}, "# hosts\na 1\nb 2\nc 3\n"},
		{MapChange{Op: MapSet, Key: "a", Value: "9"}, "# hosts\na 9\nb 2\n"},
		{MapChange{Op: MapDel, Key: "b"}, "# hosts\na 1\n"},
	} {
		got, err := EditMap(m, tc.c)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %q %v", tc.c, got, err)
		}
	}
	if _, err := EditMap(m, MapChange{Op: MapAdd, Key: "a", Value: "x"}); err == nil {
		t.Error("add of an existing key")
	}
}

func mustFind(t *testing.T, b []byte) ServerLine {
	sl, err := FindServer([]string{"/c.cfg"}, func(string) ([]byte, bool) { return b, true }, "be", "s1")
	if err != nil {
		t.Fatal(err)
	}
	return sl
}

func TestSnapshotPlan(t *testing.T) {
	lines := func(m map[string]string) func(string, string) ([]string, bool) {
		return func(be, s string) ([]string, bool) {
			l, ok := m[be+"/"+s]
			return strings.Fields(l), ok
		}
	}
	before := lines(map[string]string{"be/a": "server a 10.0.0.1:80 weight 10", "be/b": "server b 10.0.0.2:80 check", "be/c": "server c 10.0.0.3:80 weight 10", "be/d": "server d 10.0.0.4:80"})
	after := lines(map[string]string{"be/a": "server a 10.0.0.1:80 weight 10", "be/b": "server b 10.0.0.2:81 check", "be/c": "server c 10.0.0.3:80 weight 20", "be/d": "server d 10.0.0.4:80 disabled"})
	snap := Snapshot{
		{Backend: "be", Name: "a", State: StateDrain, Admin: admForcedDrain, Weight: 5, InitWeight: 1},
		{Backend: "be", Name: "b", State: StateDrain, Admin: admForcedDrain, Weight: 1, InitWeight: 1},
		{Backend: "be", Name: "c", State: StateReady, Weight: 3, InitWeight: 1},
		{Backend: "be", Name: "d", State: StateMaint, Admin: admForcedMaint, Weight: 1, InitWeight: 1},
		{Backend: "be", Name: "e", State: StateReady, Weight: 1, InitWeight: 1},
	}
	cs, rep := snap.Plan(before, after)
	if len(cs) != 1 || cs[0].Server != "a" || cs[0].State != StateDrain || *cs[0].Weight != 5 {
		t.Fatalf("%+v\n%+v", cs, rep)
	}
	if len(rep) != 4 || rep[1].Dropped == "" || rep[2].Dropped == "" || rep[3].Dropped == "" {
		t.Fatalf("%+v", rep)
	}
}

func TestDrift(t *testing.T) {
	c := ConfigServer{Addr: "10.0.0.1", Port: 80}
	if d := Drift(Server{State: StateMaint, Admin: admResolvMaint, Addr: "10.0.0.1", Port: 80, Weight: 1, InitWeight: 1}, c); len(d) != 0 {
		t.Errorf("maint by resolution is drift: %v", d)
	}
	if d := Drift(Server{State: StateMaint, Admin: admForcedMaint, Addr: "10.0.0.1", Port: 80, Weight: 3, InitWeight: 1}, c); len(d) != 2 {
		t.Errorf("forced maint and weight 3: %v", d)
	}
	if d := Drift(Server{Addr: "10.0.0.1", Port: 80, Weight: 10, InitWeight: 10}, c); len(d) != 0 {
		t.Errorf("a weight from default-server is drift: %v", d)
	}
}
