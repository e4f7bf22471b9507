package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/validate"
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

// BenchmarkDefaultProbe measures what the defaults cost: 20 attempts
// (the default count for one listening process), 8 in flight, against
// each kind of bind a haproxy config infers, through a real haproxy with
// Debian's timeouts (timeout connect 5000, no retries line: haproxy gives
// up on a dead server after 3 retries of 1 s). A tcp server that greets
// ends each attempt at once; a silent one costs the linger: 300 ms with
// `retries 0`, 3.3 s with haproxy's default retries. docs/benchmarks.md
// has the numbers.
func BenchmarkDefaultProbe(b *testing.B) {
	testbed.Require(b, testbed.TierBinary)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello") }))
	b.Cleanup(web.Close)
	front := map[string]string{}
	for _, n := range []string{"greets", "silent_retries0", "silent", "web"} {
		front[n] = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(b))
	}
	dir := runHAProxy(b, fmt.Sprintf(`defaults
    timeout connect 5000
    timeout client 50000
    timeout server 50000
listen greets
    mode tcp
    bind %s
    server s %s
listen silent_retries0
    mode tcp
    bind %s
    retries 0
    server s %s
listen silent
    mode tcp
    bind %s
    server s %s
listen web
    mode http
    bind %s
    server s %s
`, front["greets"], testbed.TCPBackend(b), front["silent_retries0"], startEcho(b), front["silent"], startEcho(b),
		front["web"], strings.TrimPrefix(web.URL, "http://")), front["web"])
	vc, err := validate.Parse(filepath.Join(dir, "haproxy.cfg"))
	if err != nil {
		b.Fatal(err)
	}
	targets := map[string]Target{}
	var all []Target
	for _, t := range InferTargets(Listeners(vc), "") {
		for n, a := range front {
			if a == t.Address {
				targets[n] = t
			}
		}
		all = append(all, t)
	}
	opts := Options{Concurrency: DefaultConcurrency, Timeout: DefaultTimeout}
	run := func(b *testing.B, t Target) {
		for b.Loop() {
			if rep := Run(context.Background(), []Target{t}, opts); !rep.OK {
				b.Fatalf("%s: %v", t.Address, rep.Targets[0].Errors)
			}
		}
	}
	b.Run("tcp-greeting", func(b *testing.B) { run(b, targets["greets"]) })
	b.Run("tcp-silent-retries0", func(b *testing.B) { run(b, targets["silent_retries0"]) })
	b.Run("tcp-silent-default-retries", func(b *testing.B) { run(b, targets["silent"]) })
	b.Run("tcp-silent-linger-off", func(b *testing.B) {
		t := targets["silent"]
		t.Linger = NoLinger
		run(b, t)
	})
	b.Run("http", func(b *testing.B) { run(b, targets["web"]) })
	b.Run("learn-all-four", func(b *testing.B) {
		for b.Loop() {
			if base := Learn(context.Background(), all, opts); len(base.Targets) != 4 {
				b.Fatalf("baseline %+v", base)
			}
		}
	})
}
