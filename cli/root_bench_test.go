package cli

import (
	"io"
	"testing"
)

// BenchmarkRootCmd builds the command tree, as every command does at
// start (docs/benchmarks.md, start-up): its allocations land on fresh
// heap pages, which fault in one by one.
func BenchmarkRootCmd(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		a := &app{stdout: io.Discard, stderr: io.Discard, version: "bench"}
		a.rootCmd()
	}
}
