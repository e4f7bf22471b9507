package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Hosts with more than one haproxy: a second unit from a template, and
// haproxy in a network namespace of its own, in a cgroup that looks like
// a container's.

// templateUnit is the box's haproxy@.service. Debian 12's haproxy package
// ships no template unit, so this is Debian's haproxy.service with every
// per-instance path named after the instance (%i): its config in the run
// directory, its pidfile and its master socket.
const templateUnit = "/run/systemd/system/haproxy@.service"

func templateUnitText(dir string) string {
	bin := HAProxyBin()
	return fmt.Sprintf(`[Unit]
Description=HAProxy Load Balancer (instance %%i; written by the test bed)
After=network-online.target

[Service]
Environment="CONFIG=%s/haproxy-%%i.cfg" "PIDFILE=/run/haproxy-%%i.pid" "EXTRAOPTS=-S /run/haproxy-%%i-master.sock"
ExecStart=%s -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS
ExecReload=%s -Ws -f $CONFIG -c -q $EXTRAOPTS
ExecReload=/bin/kill -USR2 $MAINPID
KillMode=mixed
Restart=always
SuccessExitStatus=143
Type=notify
`, dir, bin, bin)
}

// InstanceMasterSocket is the master CLI socket (a path inside the box)
// of haproxy@instance.service.
func InstanceMasterSocket(instance string) string {
	return "/run/haproxy-" + instance + "-master.sock"
}

// StartHAProxyInstance writes cfg as the config of haproxy@instance.service
// (installing the template unit on first use), starts the unit and waits
// until it is active and its master socket exists. It returns the unit's
// name. The box's systemd stops it with the box.
func (s *Sandbox) StartHAProxyInstance(t testing.TB, instance, cfg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	unit := "haproxy@" + instance + ".service"
	if err := writeAtomic(filepath.Join(s.dir, "haproxy-"+instance+".cfg"), cfg); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	text := templateUnitText(s.dir)
	if b, err := os.ReadFile(s.HostPath(templateUnit)); err != nil || string(b) != text {
		if err := writeAtomic(s.HostPath(templateUnit), text); err != nil {
			t.Fatalf("testbed: %v", err)
		}
		if _, err := s.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatalf("testbed: %v", err)
		}
	}
	if _, err := s.Systemctl(ctx, "start", unit); err != nil {
		journal, _, _ := s.Run(ctx, "journalctl", "--no-pager", "-n", "40", "-u", unit)
		t.Fatalf("testbed: start %s: %v\n%s", unit, err, journal)
	}
	for {
		state, _ := s.Systemctl(ctx, "is-active", unit)
		_, serr := os.Stat(s.HostPath(InstanceMasterSocket(instance)))
		if strings.TrimSpace(state) == "active" && serr == nil {
			return unit
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testbed: %s not active with a master socket (state %q, socket: %v)", unit, strings.TrimSpace(state), serr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// AddNetns creates a network namespace in the box with `ip netns add`
// (it lives in the box's private /run/netns and goes with the box),
// brings its loopback up, and returns its path inside the box
// ("/run/netns/NAME"), for `ip netns exec`, nsenter --net or a unit's
// NetworkNamespacePath=.
func (s *Sandbox) AddNetns(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, argv := range [][]string{{"ip", "netns", "add", name}, {"ip", "-n", name, "link", "set", "lo", "up"}} {
		if _, _, err := s.Run(ctx, argv...); err != nil {
			t.Fatalf("testbed: %v", err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, _ = s.Run(ctx, "ip", "netns", "del", name)
	})
	return "/run/netns/" + name
}

// SysctlIn sets a sysctl in the box's network namespace at path (from
// AddNetns) with sysctl(8). It runs from the host: the box's /proc/sys is
// read-only, and a net.* sysctl belongs to the namespace of the writer.
func (s *Sandbox) SysctlIn(t testing.TB, netnsPath, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+s.HostPath(netnsPath), "sysctl", "-w", key+"="+value).CombinedOutput()
	if err != nil {
		t.Fatalf("testbed: sysctl %s=%s in %s: %v: %s", key, value, netnsPath, err, out)
	}
}

// StartContainerLike runs argv in the box the way a container runtime
// would place it: in the network namespace at netnsPath (from AddNetns;
// "" keeps the box's) and in a transient scope unit named scope (e.g.
// "docker-<id>.scope", what docker's systemd cgroup driver creates under
// system.slice), through `systemd-run --scope` and `ip netns exec`, which
// both exec the program in place. It is killed when t ends.
func (s *Sandbox) StartContainerLike(t testing.TB, scope, netnsPath string, argv ...string) *Proc {
	t.Helper()
	cmd := []string{"systemd-run", "--quiet", "--scope", "--slice=system.slice", "--unit=" + scope, "--"}
	if netnsPath != "" {
		cmd = append(cmd, "ip", "netns", "exec", filepath.Base(netnsPath))
	}
	return s.Start(t, append(cmd, argv...)...)
}
