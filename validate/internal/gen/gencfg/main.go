// Command gencfg writes the benchmark config of docs/benchmarks.md:
//
//	go run ./validate/internal/gen/gencfg -o /var/tmp/haguard-bench.cfg
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/haguard/haguard/validate/internal/gen"
)

func main() {
	out := flag.String("o", "", "output file (required)")
	pairs := flag.Int("pairs", gen.Benchmark.Pairs, "frontend/backend pairs")
	servers := flag.Int("servers", gen.Benchmark.Servers, "servers per backend")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "gencfg: -o FILE is required")
		os.Exit(2)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencfg:", err)
		os.Exit(1)
	}
	n, err := gen.Write(f, gen.Spec{Pairs: *pairs, Servers: *servers})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencfg:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d lines\n", *out, n)
}
