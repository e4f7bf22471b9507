package probe

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

// BenchmarkMySQLProbe20 measures the seed 003 check: 20 MySQL connections
// through haproxy to a real MariaDB. Sub-benchmarks: our probe (handshake
// only, and with a login, each sequentially and with the default
// concurrency) against the operator's bash loop of 20 `mysql -e 'SELECT 1'`
// on the same path. docs/benchmarks.md has the numbers.
func BenchmarkMySQLProbe20(b *testing.B) {
	testbed.Require(b, testbed.TierSystem)
	m := testbed.StartMariaDB(b, testbed.MariaDBOptions{})
	front := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(b))
	runHAProxy(b, testbed.TCPProxyConfig(front, m.Addr()), front)
	user, password := m.ProbeUser()

	probe20 := func(b *testing.B, t Target, conc int) {
		t.Address, t.Kind, t.Count = front, KindMySQL, 20
		for b.Loop() {
			rep := Run(context.Background(), []Target{t}, Options{Concurrency: conc, Timeout: 3 * time.Second})
			if !rep.OK {
				b.Fatalf("probe failed: %v", rep.Targets[0].Errors)
			}
		}
	}
	b.Run("handshake/sequential", func(b *testing.B) { probe20(b, Target{}, 1) })
	b.Run("handshake/concurrency8", func(b *testing.B) { probe20(b, Target{}, 8) })
	b.Run("login/sequential", func(b *testing.B) { probe20(b, Target{User: user, Password: password}, 1) })
	b.Run("login/concurrency8", func(b *testing.B) { probe20(b, Target{User: user, Password: password}, 8) })
	b.Run("haguard-probe-binary", func(b *testing.B) {
		// The whole command as an operator runs it: process start, the
		// /proc listener scan, 20 handshakes, JSON out.
		// HAGUARD_BIN measures a given build, e.g. make build's static PIE
		// (docs/benchmarks.md, start-up); else the test bed's.
		bin := os.Getenv("HAGUARD_BIN")
		if bin == "" {
			bin = testbed.BuildHaguard(b)
		}
		yml := filepath.Join(b.TempDir(), "haguard.yaml")
		if err := os.WriteFile(yml, []byte("probe:\n  concurrency: 8\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			cmd := exec.Command(bin, "probe", "--config-file", yml, "--target", front, "--kind", "mysql",
				"--count", "20", "--stats-socket", "none", "--format", "json")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("haguard probe: %v\n%s", err, out)
			}
		}
	})
	b.Run("bash-mysql-loop", func(b *testing.B) {
		host, port := splitAddr(b, front)
		script := fmt.Sprintf(`for i in $(seq 20); do mysql --no-defaults -h %s -P %s -u %s -p%s -e 'SELECT 1' >/dev/null || exit 1; done`,
			host, port, user, password)
		for b.Loop() {
			if out, err := exec.Command("bash", "-c", script).CombinedOutput(); err != nil {
				b.Fatalf("bash loop: %v\n%s", err, out)
			}
		}
	})
}

func splitAddr(b *testing.B, addr string) (string, string) {
	b.Helper()
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	b.Fatalf("bad address %q", addr)
	return "", ""
}
