package cli

import (
	"io"
	"testing"
)

// BenchmarkRootCmd builds the command tree as a run does at start
// (docs/benchmarks.md, start-up): "one" builds the root and the invoked
// command, "all" the whole tree (help, completion). Its allocations land
// on fresh heap pages, which fault in one by one.
func BenchmarkRootCmd(b *testing.B) {
	for _, bc := range []struct{ name, only string }{{"one", "reload"}, {"all", ""}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a := &app{stdout: io.Discard, stderr: io.Discard, version: "bench"}
				a.rootCmd(bc.only)
			}
		})
	}
}
