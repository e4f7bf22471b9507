package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Start-up (docs/benchmarks.md, "start-up"): every haguard command runs
// the package inits of everything the binary links, so what is linked and
// what its inits do is what a command costs before it does anything.

var built struct {
	once sync.Once
	bin  string
	err  error
}

// makeBuild builds the binary as make build does (a static PIE), once
// per test run, in a directory TestMain removes.
func makeBuild(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds the binary; -short runs unit tests only")
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "haguard-startup-")
		if err != nil {
			built.err = err
			return
		}
		built.bin = filepath.Join(dir, "haguard")
		out, err := exec.Command("make", "-s", "-C", "../..", "build", "BIN="+built.bin, "VERSION=vstartup").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("make build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		tb.Fatal(built.err)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.bin != "" {
		os.RemoveAll(filepath.Dir(built.bin))
	}
	os.Exit(code)
}

// initCost runs `haguard version` with GODEBUG=inittrace=1 and sums what
// the package inits allocated (bytes and allocations are the same from
// run to run, unlike their clock times).
func initCost(t *testing.T, bin string) (bytes, allocs int, top []string) {
	t.Helper()
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("haguard version: %v\n%s", err, stderr.String())
	}
	type pkg struct {
		name          string
		bytes, allocs int
	}
	var pkgs []pkg
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		// init NAME @T ms, C ms clock, B bytes, A allocs
		f := strings.Fields(sc.Text())
		if len(f) != 11 || f[0] != "init" {
			continue
		}
		b, _ := strconv.Atoi(f[7])
		a, _ := strconv.Atoi(f[9])
		pkgs = append(pkgs, pkg{f[1], b, a})
		bytes += b
		allocs += a
	}
	if len(pkgs) < 50 {
		t.Fatalf("inittrace listed %d packages:\n%s", len(pkgs), stderr.String())
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].bytes > pkgs[j].bytes })
	for _, p := range pkgs[:8] {
		top = append(top, fmt.Sprintf("%s %d B %d allocs", p.name, p.bytes, p.allocs))
	}
	return bytes, allocs, top
}

// TestStartupInitBudget keeps the package inits of every command small:
// with client_golang linked they allocated 457 KB in 3,380 allocations
// (its global registry and Go collector), now about 203 KB in 1,435. The
// budget leaves room for a new dependency's few, not for another
// registry at start-up.
func TestStartupInitBudget(t *testing.T) {
	const maxBytes, maxAllocs = 260 << 10, 1800
	b, a, top := initCost(t, makeBuild(t))
	t.Logf("package inits: %d bytes in %d allocations; largest: %s", b, a, strings.Join(top, "; "))
	if b > maxBytes || a > maxAllocs {
		t.Errorf("package inits allocate %d bytes in %d allocations, over the budget of %d bytes and %d allocations (docs/benchmarks.md, start-up); largest:\n  %s",
			b, a, maxBytes, maxAllocs, strings.Join(top, "\n  "))
	}
}

// BenchmarkStartup execs the binary make build makes, as a shell does:
// `haguard version`, and `haguard probe` of one TCP attempt to a loopback
// listener (no haguard.yaml, no stats socket). hyperfine measures the same
// from outside (docs/benchmarks.md).
func BenchmarkStartup(b *testing.B) {
	bin := makeBuild(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"version", []string{"version"}},
		{"probe", []string{"--config-file", os.DevNull, "probe", "--target", ln.Addr().String(), "--kind", "tcp", "--count", "1", "--stats-socket", "none", "--format", "json"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				var out bytes.Buffer
				cmd := exec.Command(bin, bc.args...)
				cmd.Stdout = &out
				if err := cmd.Run(); err != nil {
					b.Fatalf("%v: %v\n%s", bc.args, err, out.String())
				}
			}
		})
	}
}
