package reload_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

// BenchmarkSystemReload compares, in one sandbox on a small config, a
// plain `systemctl reload haproxy` with `haguard reload --force` end to
// end (check, snapshot, install, reload, settle, sweep, probe with 10
// attempts), both run inside the box. Run:
//
//	go test -run '^$' -bench BenchmarkSystemReload -benchtime 20x ./reload/
func BenchmarkSystemReload(b *testing.B) {
	bx := newBenchBox(b)
	ctx := context.Background()
	b.Run("systemctl", func(b *testing.B) {
		for b.Loop() {
			if _, err := bx.s.Systemctl(ctx, "reload", "haproxy.service"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("haguard", func(b *testing.B) {
		for b.Loop() {
			if out, errOut, err := bx.s.Run(ctx, bx.bin, "--config-file", bx.yaml, "--log-level", "error", "reload", "--force"); err != nil {
				b.Fatalf("%v\n%s\n%s", err, out, errOut)
			}
		}
	})
}

// BenchmarkSystemReloadPaired runs the two back to back in every
// iteration, so that a load that drifts (other suites on the machine)
// hits both alike, and reports their mean times and the ratio.
//
//	go test -run '^$' -bench BenchmarkSystemReloadPaired -benchtime 30x ./reload/
func BenchmarkSystemReloadPaired(b *testing.B) { pairedReloads(b, newBenchBox(b)) }

// pairedReloads alternates `systemctl reload` and `haguard reload --force`
// in bx and reports both means and their ratio.
func pairedReloads(b *testing.B, bx *box) {
	ctx := context.Background()
	var sys, hg time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if _, err := bx.s.Systemctl(ctx, "reload", "haproxy.service"); err != nil {
			b.Fatal(err)
		}
		sys += time.Since(t0)
		// systemctl returns once SIGUSR2 is sent; let that reload finish
		// (untimed) so haguard does not pay for it.
		b.StopTimer()
		for i := 0; i < 400; i++ {
			if out, err := bx.s.MasterCLI(ctx, "show proc"); err == nil && strings.Contains(out, "# workers") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.StartTimer()
		t1 := time.Now()
		if out, errOut, err := bx.s.Run(ctx, bx.bin, "--config-file", bx.yaml, "--log-level", "error", "reload", "--force"); err != nil {
			b.Fatalf("%v\n%s\n%s", err, out, errOut)
		}
		hg += time.Since(t1)
		n++
	}
	b.ReportMetric(float64(sys.Milliseconds())/float64(n), "systemctl-ms/op")
	b.ReportMetric(float64(hg.Milliseconds())/float64(n), "haguard-ms/op")
	b.ReportMetric(float64(hg)/float64(sys), "ratio")
}

// BenchmarkSystemReloadBackends is BenchmarkSystemReloadPaired on a
// config whose server is checked (inter 1s) and that has a stats socket,
// once per reload.backends policy: with "ignore" the servers are read
// and not waited for; with the default the probe stage waits for the new
// generation's first check.
//
//	go test -run '^$' -bench BenchmarkSystemReloadBackends -benchtime 20x ./reload/
func BenchmarkSystemReloadBackends(b *testing.B) {
	for _, policy := range []string{"ignore", "previously-up"} {
		b.Run(policy, func(b *testing.B) {
			bx := newBenchBox(b)
			cfg := strings.Replace(bx.good, "\tmaxconn 256\n", "\tmaxconn 256\n\tstats socket "+bx.s.Dir()+"/admin.sock mode 600 level admin\n", 1)
			cfg = strings.Replace(cfg, "\tserver s1 ", "\tdefault-server check inter 1s\n\tserver s1 ", 1)
			bx.s.StartHAProxy(b, cfg)
			y, err := os.ReadFile(bx.yaml)
			if err != nil {
				b.Fatal(err)
			}
			bx.s.WriteFiles(b, map[string]string{bx.yaml: strings.Replace(string(y), "reload:\n", "reload:\n  backends: "+policy+"\n", 1)})
			pairedReloads(b, bx)
		})
	}
}

// newBenchBox is newBox for a benchmark (testbed takes a testing.TB).
func newBenchBox(tb testing.TB) *box {
	tb.Helper()
	t, ok := tb.(*testing.T)
	if ok {
		return newBox(t)
	}
	testbed.Require(tb, testbed.TierSystem)
	b := &box{s: testbed.Boot(tb), bin: testbed.BuildHaguard(tb)}
	b.listen = "127.0.0.1:" + strconv.Itoa(testbed.FreePort(tb))
	b.good = testbed.TCPProxyConfig(b.listen, testbed.TCPBackend(tb))
	b.s.StartHAProxy(tb, b.good)
	b.state = b.s.Dir() + "/state"
	b.yaml = b.s.Dir() + "/haguard.yaml"
	writeYAML(tb, b)
	return b
}

func writeYAML(tb testing.TB, b *box) {
	tb.Helper()
	y := "haproxy:\n  configs: [" + strconv.Quote(b.s.HAProxyConfig()) + "]\nstate_dir: " + strconv.Quote(b.state) +
		"\nreload:\n  settle_timeout: 10s\n  min_interval: 0s\n  lock_timeout: 2m\nprobe:\n  count: 10\n  timeout: 2s\n  targets:\n    - address: " +
		strconv.Quote(b.listen) + "\n      kind: tcp\n      expect: \"hello\"\n"
	if err := os.WriteFile(b.yaml, []byte(y), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// TestSystemZeroDropsUnderReloads runs a loopback load generator (~500
// new connections per second through haproxy, each reading the backend's
// greeting) while 50 `haguard reload --force` run back to back, and
// requires that no connection failed. It takes about a minute, so it runs
// only when asked:
//
//	HAGUARD_ZERO_DROPS=1 go test -run TestSystemZeroDropsUnderReloads -v ./reload/
func TestSystemZeroDropsUnderReloads(t *testing.T) {
	if os.Getenv("HAGUARD_ZERO_DROPS") == "" {
		t.Skip("set HAGUARD_ZERO_DROPS=1 to run the 50-reload zero-drop test")
	}
	b := newBox(t)
	reloads := 50
	if n, err := strconv.Atoi(os.Getenv("HAGUARD_ZERO_DROPS_RELOADS")); err == nil && n > 0 {
		reloads = n
	}
	ctx, cancel := context.WithCancel(context.Background())
	var ok, fail atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	wg.Go(func() { loadGen(ctx, b.listen, 500, &ok, &fail, &firstErr) })
	start := time.Now()
	for i := range reloads {
		out, errOut, code := b.haguard(t, nil, "--log-level", "error", "reload", "--force")
		if code != 0 {
			cancel()
			wg.Wait()
			t.Fatalf("reload %d: exit %d\n%s\n%s", i, code, out, errOut)
		}
	}
	elapsed := time.Since(start)
	time.Sleep(500 * time.Millisecond) // let the last connections finish
	cancel()
	wg.Wait()
	rate := float64(ok.Load()+fail.Load()) / elapsed.Seconds()
	t.Logf("%d reloads in %s; %d connections OK, %d failed (%.0f conn/s)", reloads, elapsed.Round(time.Millisecond), ok.Load(), fail.Load(), rate)
	if fail.Load() != 0 {
		t.Fatalf("%d connections dropped during reloads (first: %v)", fail.Load(), firstErr.Load())
	}
	if ok.Load() < int64(reloads) {
		t.Fatalf("the load generator made only %d connections", ok.Load())
	}
}

// loadGen opens about rate connections per second to addr until ctx ends;
// each must read the greeting. At most 64 are in flight (bounded).
func loadGen(ctx context.Context, addr string, rate int, ok, fail *atomic.Int64, firstErr *atomic.Value) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // saturated: skip a tick rather than queue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := greet(addr); err != nil {
				fail.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return
			}
			ok.Add(1)
		})
	}
}

func greet(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, len(testbed.Greeting))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != testbed.Greeting {
		return errors.New("wrong greeting")
	}
	return nil
}
