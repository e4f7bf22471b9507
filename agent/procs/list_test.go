package procs

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

func TestParseStat(t *testing.T) {
	st, err := parseStat([]byte("4242 (ha) (proxy) x) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3"))
	if err != nil {
		t.Fatal(err)
	}
	if st.state != 'S' || st.ppid != 17 || st.start != 987654 || st.comm != "ha) (proxy) x" {
		t.Fatalf("%+v", st)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 2", "1 (x) S nope 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
}

func TestParseCgroup(t *testing.T) {
	for _, tc := range []struct{ in, unified, systemd string }{
		{"0::/system.slice/haproxy.service\n", "/system.slice/haproxy.service", ""},
		{"0::/..\n", "/..", ""},
		{"12:cpu,cpuacct:/system.slice/haproxy.service\n1:name=systemd:/system.slice/haproxy.service\n0::/system.slice/haproxy.service\n",
			"/system.slice/haproxy.service", "/system.slice/haproxy.service"},
		{"1:name=systemd:/user.slice/user-0.slice/session-1.scope\n0::/\n", "/", "/user.slice/user-0.slice/session-1.scope"},
		{"garbage\n", "", ""},
	} {
		u, s := parseCgroup(tc.in)
		if u != tc.unified || s != tc.systemd {
			t.Errorf("%q: got %q %q", tc.in, u, s)
		}
	}
}

func TestInCgroup(t *testing.T) {
	p := Proc{CgroupUnified: "/system.slice/haproxy.service/sub"}
	if !p.inCgroup("/system.slice/haproxy.service") || !p.inCgroup("/system.slice/haproxy.service/") {
		t.Fatal("a sub-cgroup is in the unit")
	}
	if p.inCgroup("/system.slice/haproxy.servic") || p.inCgroup("") {
		t.Fatal("prefix of a name is not membership")
	}
}

func TestSelected(t *testing.T) {
	names := []string{"haproxy", "haproxy-enterprise-lb"}
	for _, tc := range []struct {
		comm, exe string
		want      bool
	}{
		{"haproxy", "/usr/sbin/haproxy", true},
		{"hapx", "/usr/sbin/haproxy", true},            // started through a symlink
		{"haproxy", "", true},                          // exe unreadable
		{"x", "/run/dir/haproxy (deleted)", true},      // deleted copy
		{"haproxy-enterpr", "/opt/bin/whatever", true}, // comm truncated to 15
		{"haproxy_exporter", "/usr/bin/haproxy_exporter", false},
		{"sleep", "/usr/bin/sleep", false},
	} {
		if got := selected(names, tc.comm, tc.exe); got != tc.want {
			t.Errorf("%q %q: got %v", tc.comm, tc.exe, got)
		}
	}
}

// TestListProcessesReal lists this test binary (its comm) and a child:
// pid, ppid, start, cgroup and a listening socket come from the live
// /proc, with the socket table read once.
func TestListProcessesReal(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(self)
	// A child that is the same binary, so it matches by exe too.
	child := exec.Command(self, "-test.run=^$", "-test.bench=^$")
	child.Env = append(os.Environ(), "HAGUARD_PROCS_SLEEP=1")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ps []Proc
	for range 100 { // the child may not have exec'd yet
		if ps, err = ListProcesses(ctx, []string{name}); err != nil {
			t.Fatal(err)
		}
		if find(ps, int32(child.Process.Pid)) != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	me := find(ps, int32(os.Getpid()))
	if me == nil {
		t.Fatalf("own process not listed among %d", len(ps))
	}
	if me.PPID != int32(os.Getppid()) || me.StartTicks == 0 || me.Created.IsZero() || me.Exe != self ||
		me.CgroupUnified == "" && me.CgroupSystemd == "" || len(me.Cmdline) == 0 || me.Cmdline[0] != os.Args[0] {
		t.Fatalf("own process: %+v", me)
	}
	// The start time is computed from the stat and CLOCK_BOOTTIME; the
	// process's age agrees with /proc/uptime's count (10 ms ticks) less
	// the same start tick, to a few ticks. gopsutil's own CreateTime,
	// from /proc/stat's btime rounded to the second, can be a second or
	// more early.
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	up, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	age := time.Duration((up - float64(me.StartTicks)/clockTicks) * float64(time.Second))
	if d := time.Since(me.Created) - age; d.Abs() > 50*time.Millisecond {
		t.Fatalf("own start time %v: %v old, /proc/uptime says %v", me.Created, time.Since(me.Created), age)
	}
	if !slices.Contains(me.Listen, l.Addr().String()) {
		t.Fatalf("own listener %s not in %v", l.Addr(), me.Listen)
	}
	if me.Ancestors == nil {
		t.Fatal("ancestors not filled")
	}
	c := find(ps, int32(child.Process.Pid))
	if c == nil || c.PPID != int32(os.Getpid()) || len(c.Listen) != 0 || !slices.Contains(c.Ancestors, int32(os.Getppid())) {
		t.Fatalf("child: %+v", c)
	}
	start, zombie, err := StartTicks(c.PID)
	if err != nil || zombie || start != c.StartTicks {
		t.Fatalf("StartTicks: %d %v %v (listed %d)", start, zombie, err, c.StartTicks)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("HAGUARD_PROCS_SLEEP") == "1" {
		time.Sleep(time.Minute) // a child for TestListProcessesReal
		os.Exit(0)
	}
	os.Exit(testbed.RunMain(m))
}

func find(ps []Proc, pid int32) *Proc {
	for i := range ps {
		if ps[i].PID == pid {
			return &ps[i]
		}
	}
	return nil
}

func TestCgroupShown(t *testing.T) {
	for _, tc := range []struct{ unified, systemd, want string }{
		{"/system.slice/haproxy.service", "", "/system.slice/haproxy.service"},
		{"/system.slice/haproxy.service", "/", "/system.slice/haproxy.service"}, // a box on a hybrid host
		{"/", "/system.slice/haproxy.service", "/system.slice/haproxy.service"}, // legacy v1 host
		{"", "/system.slice/haproxy.service", "/system.slice/haproxy.service"},
		{"/..", "/", "/.."},
		{"", "", ""},
	} {
		if got := (Proc{CgroupUnified: tc.unified, CgroupSystemd: tc.systemd}).Cgroup(); got != tc.want {
			t.Errorf("%q %q: got %q", tc.unified, tc.systemd, got)
		}
	}
}
