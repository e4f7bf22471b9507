package host

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/systemd"
)

func TestParseArgv(t *testing.T) {
	for _, tc := range []struct {
		argv    string
		configs []string
		socket  string
		pid     string
		chdir   string
	}{
		// Debian 12's unit, as the master runs after a reload (2.6 adds -sf/-x).
		{"/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid -S /run/haproxy-master.sock -sf 1203 1207 -x sockpair@5",
			[]string{"/etc/haproxy/haproxy.cfg"}, "/run/haproxy-master.sock", "/run/haproxy.pid", ""},
		// Fedora/RHEL: a file and a directory, no master CLI.
		{"/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d -p /run/haproxy.pid",
			[]string{"/etc/haproxy/haproxy.cfg", "/etc/haproxy/conf.d"}, "", "/run/haproxy.pid", ""},
		{"haproxy -W -S /run/m.sock,mode,600 -C /srv/lb -f lb.cfg -- extra.cfg more.cfg",
			[]string{"lb.cfg", "extra.cfg", "more.cfg"}, "/run/m.sock", "", "/srv/lb"},
		{"haproxy -W -S ipv4@127.0.0.1:9999 -f a.cfg -L peer1 -m 512 -N 100 -n 1000", []string{"a.cfg"}, "", "", ""},
		{"haproxy -W -S unix@/run/u.sock -f b.cfg", []string{"b.cfg"}, "/run/u.sock", "", ""},
	} {
		a := ParseArgv(strings.Fields(tc.argv))
		if !slices.Equal(a.Configs, tc.configs) || a.MasterSocket != tc.socket || a.PIDFile != tc.pid || a.Chdir != tc.chdir {
			t.Errorf("%s:\n got %+v", tc.argv, a)
		}
	}
	a := ParseArgv(strings.Fields("haproxy -W -C /srv/lb -f lb.cfg -f /abs/x.cfg -S unix@rel.sock")).Resolve("/home/op")
	if want := []string{"/srv/lb/lb.cfg", "/abs/x.cfg"}; !slices.Equal(a.Configs, want) || a.MasterSocket != "/home/op/rel.sock" {
		t.Errorf("resolved %+v", a)
	}
}

func TestExpandExec(t *testing.T) {
	env := map[string]string{"CONFIG": "/etc/haproxy/haproxy.cfg", "PIDFILE": "/run/haproxy.pid",
		"EXTRAOPTS": "-S /run/haproxy-master.sock", "EMPTY": "", "OPTIONS": ""}
	got := ExpandExec(strings.Fields("/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS $EMPTY $UNSET $OPTIONS -L ${CONFIG}.x $$HOME"), env)
	want := strings.Fields("/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid -S /run/haproxy-master.sock -L /etc/haproxy/haproxy.cfg.x $HOME")
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestReadEnvFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "haproxy")
	os.WriteFile(p, []byte("# comment\n; also\nCONFIG=\"/etc/haproxy/haproxy.cfg\"\nexport CFGDIR='/etc/haproxy/conf.d'\nOPTIONS=-V \\\n -dM\n\n"), 0o644)
	env, err := ReadEnvFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if env["CONFIG"] != "/etc/haproxy/haproxy.cfg" || env["CFGDIR"] != "/etc/haproxy/conf.d" || env["OPTIONS"] != "-V  -dM" {
		t.Errorf("env %q", env)
	}
}

// fakeProc writes /proc/PID/{cmdline,cwd,exe} for pid under a temp dir.
func fakeProc(t *testing.T, pid string, argv []string, cwd, exe string) procRoot {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, pid)
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(argv, "\x00")+"\x00"), 0o644)
	if err := os.Symlink(cwd, filepath.Join(dir, "cwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(dir, "exe")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cgroup"), []byte("0::/system.slice/haproxy.service\n"), 0o644)
	return procRoot(root)
}

// rhelUnit is haproxy.service as Fedora and RHEL ship it (no -S).
func rhelUnit(envFile string) systemd.Unit {
	return systemd.Unit{Name: "haproxy.service", FragmentPath: "/usr/lib/systemd/system/haproxy.service",
		Environment:      []string{"CONFIG=/etc/haproxy/haproxy.cfg", "PIDFILE=/run/haproxy.pid", "CFGDIR=/etc/haproxy/conf.d"},
		EnvironmentFiles: []systemd.EnvFile{{Path: envFile, Optional: true}},
		ExecStart:        []systemd.Exec{{Path: "/usr/sbin/haproxy", Argv: strings.Fields("/usr/sbin/haproxy -Ws -f $CONFIG -f $CFGDIR -p $PIDFILE $OPTIONS")}},
	}
}

func TestDiscover(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "sysconfig-haproxy")
	os.WriteFile(envFile, []byte("OPTIONS=\"-S /run/from-envfile.sock\"\nCFGDIR=/srv/conf.d\n"), 0o644)

	// Not running: the unit's ExecStart, with its Environment overridden
	// by the EnvironmentFile, as systemd does.
	d := procRoot(t.TempDir()).discover(rhelUnit(envFile))
	if want := []string{"/etc/haproxy/haproxy.cfg", "/srv/conf.d"}; !slices.Equal(d.Configs, want) || !strings.HasPrefix(d.ConfigsFrom, "unit ExecStart") {
		t.Errorf("configs %q from %q", d.Configs, d.ConfigsFrom)
	}
	if d.MasterSocket.Value != "/run/from-envfile.sock" || d.Binary.Value != "/usr/sbin/haproxy" || d.Env["CFGDIR"] != "/srv/conf.d" {
		t.Errorf("discovery %+v", d)
	}

	// Running: the master's own command line wins, relative paths
	// resolved from its working directory, a deleted exe named by its path.
	u := rhelUnit(envFile)
	u.MainPID, u.ControlGroup = 4242, "/system.slice/haproxy.service"
	proc := fakeProc(t, "4242", strings.Fields("/usr/sbin/haproxy -Ws -f haproxy.cfg -f conf.d -p /run/haproxy.pid"), "/etc/haproxy", "/usr/sbin/haproxy (deleted)")
	d = proc.discover(u)
	if want := []string{"/etc/haproxy/haproxy.cfg", "/etc/haproxy/conf.d"}; !slices.Equal(d.Configs, want) || d.ConfigsFrom != "master command line (pid 4242)" {
		t.Errorf("configs %q from %q", d.Configs, d.ConfigsFrom)
	}
	if d.Binary.Value != "/usr/sbin/haproxy" || d.MasterSocket.Value != "" || len(d.Notes) == 0 {
		t.Errorf("discovery %+v", d)
	}

	// The same pid seen from another cgroup namespace is not trusted.
	u.ControlGroup = "/system.slice/other.service"
	if d = proc.discover(u); !strings.HasPrefix(d.ConfigsFrom, "unit ExecStart") {
		t.Errorf("a MainPID outside the unit's cgroup was trusted: %q", d.ConfigsFrom)
	}

	// Nothing known: Debian's defaults, said so.
	d = procRoot(t.TempDir()).discover(systemd.Unit{Name: "haproxy.service"})
	if d.ConfigsFrom != "default" || d.Configs[0] != debianConfig || d.MasterSocket.Value != debianMasterSocket || len(d.Notes) == 0 {
		t.Errorf("discovery %+v", d)
	}
}

func TestReconcile(t *testing.T) {
	d := procRoot(t.TempDir()).discover(rhelUnit("/nonexistent"))
	// Agreeing keys and empty ones are fine; undiscovered ones are filled.
	h, err := d.Reconcile(config.HAProxy{Configs: []string{"/etc/haproxy/haproxy.cfg", "/etc/haproxy/conf.d/"}, StatsSocket: "/run/s.sock"})
	if err != nil || h.StatsSocket != "/run/s.sock" || h.Binary != "/usr/sbin/haproxy" || h.MasterSocket != "" {
		t.Fatalf("reconcile: %+v %v", h, err)
	}
	// A haguard.yaml that names another file than the unit runs is refused.
	_, err = d.Reconcile(config.HAProxy{Configs: []string{"/etc/haproxy/other.cfg"}, MasterSocket: "/run/m.sock"})
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "haproxy.configs is /etc/haproxy/other.cfg") ||
		!strings.Contains(err.Error(), "/etc/haproxy/haproxy.cfg /etc/haproxy/conf.d") || !strings.Contains(err.Error(), "haproxy.master_socket") {
		t.Fatalf("err %v, want both conflicts named", err)
	}
	// Defaults give way to haguard.yaml.
	d = procRoot(t.TempDir()).discover(systemd.Unit{Name: "x.service"})
	h, err = d.Reconcile(config.HAProxy{Configs: []string{"/srv/lb.cfg"}})
	if err != nil || !slices.Equal(h.Configs, []string{"/srv/lb.cfg"}) || d.ConfigsFrom != "haguard.yaml" {
		t.Fatalf("reconcile %+v %v", h, err)
	}
}
