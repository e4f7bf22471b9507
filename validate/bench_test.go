package validate

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/validate/internal/gen"
)

// benchConfig writes the 5,000 × 10 config of docs/benchmarks.md.
func benchConfig(b *testing.B) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "big.cfg")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := gen.Write(f, gen.Benchmark); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkCheckLint is parse + every rule, no haproxy.
func BenchmarkCheckLint(b *testing.B) {
	p := benchConfig(b)
	reg := DefaultRegistry()
	b.ResetTimer()
	for b.Loop() {
		cfg, err := Parse(p)
		if err != nil {
			b.Fatal(err)
		}
		reg.Lint(cfg, nil)
	}
}

// BenchmarkCheckHAProxyAlone is `haproxy -c` alone on the same file, as
// an operator runs it (no CA prelude).
func BenchmarkCheckHAProxyAlone(b *testing.B) {
	testbed.Require(b, testbed.TierBinary)
	p := benchConfig(b)
	var rss int64
	b.ResetTimer()
	for b.Loop() {
		res, err := runSyntax(context.Background(), testbed.HAProxyBin(), []string{p}, nil)
		if err != nil || !res.OK {
			b.Fatalf("%v %s", err, res.Output)
		}
		rss = max(rss, res.MaxRSSKB)
	}
	b.ReportMetric(float64(rss)/1024, "haproxy-peak-MiB")
}

// BenchmarkCheckFull is Check: lint and `haproxy -c` concurrently.
func BenchmarkCheckFull(b *testing.B) {
	testbed.Require(b, testbed.TierBinary)
	p := benchConfig(b)
	reg := DefaultRegistry()
	b.ResetTimer()
	for b.Loop() {
		rep, err := Check(context.Background(), Options{Files: []string{p}, HAProxyBin: testbed.HAProxyBin(), Registry: reg})
		if err != nil || !rep.OK {
			b.Fatalf("%v %+v", err, rep.Summary)
		}
	}
}

// BenchmarkSyntaxSmall is `haproxy -c` on a small config (seed 003's
// final one), plain and with RunSyntax's CA prelude.
func BenchmarkSyntaxSmall(b *testing.B) {
	testbed.Require(b, testbed.TierBinary)
	files := []string{filepath.Join(goldenDir, "seed003_final.cfg")}
	for _, c := range []struct {
		name string
		run  func(context.Context, string, []string, map[string]string) (SyntaxResult, error)
	}{{"plain", runSyntax}, {"prelude", RunSyntaxEnv}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if res, err := c.run(context.Background(), testbed.HAProxyBin(), files, nil); err != nil || !res.OK {
					b.Fatalf("%v %s", err, res.Output)
				}
			}
		})
	}
}
