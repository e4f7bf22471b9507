package host

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/systemd"
)

func TestMain(m *testing.M) { os.Exit(testbed.RunMain(m)) }

// BenchmarkDiscover is discovery's own work on a running master: its
// command line, working directory, executable and cgroup from /proc, the
// unit's EnvironmentFile, ExecStart parsing (docs/benchmarks.md).
func BenchmarkDiscover(b *testing.B) {
	proc := fakeProcB(b)
	u := rhelUnit("/nonexistent")
	u.MainPID, u.ControlGroup = 4242, "/system.slice/haproxy.service"
	for b.Loop() {
		if d := proc.discover(u); d.ConfigsFrom == "" {
			b.Fatal("nothing discovered")
		}
	}
}

func fakeProcB(b *testing.B) procRoot {
	root := b.TempDir()
	dir := root + "/4242"
	os.MkdirAll(dir, 0o755)
	os.WriteFile(dir+"/cmdline", []byte(strings.Join(strings.Fields("/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d -p /run/haproxy.pid"), "\x00")), 0o644)
	os.WriteFile(dir+"/cgroup", []byte("0::/system.slice/haproxy.service\n"), 0o644)
	os.Symlink("/", dir+"/cwd")
	os.Symlink("/usr/sbin/haproxy", dir+"/exe")
	return procRoot(root)
}

// BenchmarkStatusUnit and BenchmarkOpenStatusUnit compare what
// `haguard status` asks systemd for without and with discovery: the
// unit's state alone, and Open (the unit over D-Bus, the master from
// /proc) followed by the same state read, which takes the unit Open read.
// Against a real systemd running Debian's haproxy.service in the sandbox
// (as root: go test -run '^$' -bench Unit ./host/; docs/benchmarks.md).
func BenchmarkStatusUnit(b *testing.B) {
	sd, cfg := benchUnit(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := sd.Unit(ctx, cfg.Systemd.Unit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkState is what a reload asks between its stages and the sweep
// asks for each sweep: the unit's state alone (systemd.Client.State), to
// compare with BenchmarkStatusUnit's whole unit (docs/benchmarks.md).
func BenchmarkState(b *testing.B) {
	sd, cfg := benchUnit(b)
	ctx := context.Background()
	for b.Loop() {
		if u, err := sd.State(ctx, cfg.Systemd.Unit); err != nil || u.MainPID == 0 {
			b.Fatal(u, err)
		}
	}
}

func BenchmarkOpenStatusUnit(b *testing.B) {
	sd, cfg := benchUnit(b)
	ctx := context.Background()
	for b.Loop() {
		h, err := Open(ctx, cfg, sd, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := (unitPort{h}).UnitState(ctx, cfg.Systemd.Unit); err != nil {
			b.Fatal(err)
		}
	}
}

func benchUnit(b *testing.B) (*systemd.Client, config.Config) {
	s := testbed.Boot(b)
	s.StartHAProxy(b, testbed.TCPProxyConfig(fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(b)), testbed.TCPBackend(b)))
	sd, err := systemd.Dial(context.Background(), s.BusAddress())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sd.Close)
	return sd, config.Default()
}
