package testbed

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkStartMariaDB: install a data dir, start, create the test users,
// stop. It reports the server's RSS once ready.
func BenchmarkStartMariaDB(b *testing.B) {
	var rss float64
	for i := 0; i < b.N; i++ {
		m := StartMariaDB(b, MariaDBOptions{})
		rss += rssMB(b, m.PID())
		m.stop(b)
	}
	b.ReportMetric(rss/float64(b.N), "MB-rss/server")
}

// BenchmarkStartGalera: bootstrap a 3-node cluster until every node is
// Synced, then stop it. It reports the mean RSS of a node once Synced.
func BenchmarkStartGalera(b *testing.B) {
	var rss float64
	var nodes int
	for i := 0; i < b.N; i++ {
		g := StartGalera(b, GaleraOptions{})
		for _, m := range g.Nodes() {
			rss += rssMB(b, m.PID())
			nodes++
		}
		g.stop(b)
	}
	b.ReportMetric(rss/float64(nodes), "MB-rss/node")
}

// rssMB is the resident set of pid in MB, from /proc/PID/status.
func rssMB(tb testing.TB, pid int) float64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb / 1024
		}
	}
	tb.Fatalf("no VmRSS for pid %d", pid)
	return 0
}
