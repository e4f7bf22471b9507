package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tier-3 benchmarks of haguard serve running as its unit in the box
// (docs/benchmarks.md, "## serve"). Each measures once, whatever b.N:
//
//	go test -run '^$' -bench 'BenchmarkServe' -benchtime=1x ./cmd/haguard

// hostPID is the host PID of haguard.service's main process.
func (b *serveBox) hostPID(tb testing.TB) int {
	tb.Helper()
	boxPID, err := strconv.Atoi(strings.TrimPrefix(b.systemctl(tb, "show", "-p", "MainPID", "haguard.service"), "MainPID="))
	if err != nil {
		tb.Fatal(err)
	}
	pid, err := b.s.HostPIDOf(boxPID)
	if err != nil {
		tb.Fatal(err)
	}
	return pid
}

// cpuTicks is utime+stime of pid in clock ticks (USER_HZ = 100).
func cpuTicks(tb testing.TB, pid int) int64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

func rssKB(tb testing.TB, pid int) int64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// BenchmarkServeIdle: RSS and CPU of the idle daemon over 60 s with the
// sweep every 10 s (the yaml newServeBox writes), after one scrape of
// /metrics and one /v1/status so that those paths are warm.
func BenchmarkServeIdle(b *testing.B) {
	sb := newServeBox(b, "")
	pid := sb.hostPID(b)
	sb.do(b, "GET", "/v1/status", nil, nil)
	sb.do(b, "GET", "/metrics", nil, nil)
	const window = 60 * time.Second
	t0, c0 := time.Now(), cpuTicks(b, pid)
	time.Sleep(window)
	c1, el := cpuTicks(b, pid), time.Since(t0)
	_, _, m := sb.do(b, "GET", "/metrics", nil, nil)
	if !strings.Contains(string(m), "haguard_last_sweep_timestamp_seconds") {
		b.Fatal("no sweep metric")
	}
	cpu := float64(c1-c0) / 100 / el.Seconds() * 100
	b.ReportMetric(cpu, "cpu-%core")
	b.ReportMetric(float64(rssKB(b, pid))/1024, "rss-MiB")
	b.ReportMetric(float64(c1-c0)*10, "cpu-ms/60s")
}

// BenchmarkServeStatus200: GET /v1/status end to end (D-Bus unit
// properties, master CLI `show proc`, the config's sha256) from 200
// concurrent keep-alive clients, 25 requests each.
func BenchmarkServeStatus200(b *testing.B) {
	const clients, each = 200, 25
	sb := newServeBox(b, "")
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	lat := make([]time.Duration, clients*each)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(lat)) {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+sb.api+"/v1/status", nil)
				req.Header.Set("Authorization", "Bearer "+sb.token)
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t0)
				if resp.StatusCode != 200 || !strings.Contains(string(body), `"active_state":"active"`) {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, len(lat))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	pid := sb.hostPID(b)
	b.ReportMetric(float64(rssKB(b, pid))/1024, "rss-after-MiB")
}
