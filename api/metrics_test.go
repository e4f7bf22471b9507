package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/metricstest"
)

// A scrape during a config change sees exactly one haguard_config_info
// series, never none and never two.
func TestConfigInfoOneSeriesWhileChanging(t *testing.T) {
	m := NewMetrics()
	m.SetConfig(strings.Repeat("a", 64))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m.SetConfig(strings.Repeat(string(rune('a'+i%2)), 64))
		}
	})
	defer func() { close(stop); wg.Wait() }()
	for range 500 {
		fams := metricstest.Gather(t, m)
		if n := len(fams["haguard_config_info"].GetMetric()); n != 1 {
			t.Fatalf("a scrape saw %d haguard_config_info series", n)
		}
	}
}

// The scrape is what Prometheus's own parser reads: every family typed,
// the fixed label values at 0 from the start, the histogram cumulative
// with +Inf, sum and count.
func TestMetricsParseAsPrometheusText(t *testing.T) {
	m := NewMetrics()
	fams := metricstest.Gather(t, m)
	if _, ok := fams["haguard_config_info"]; ok && len(fams["haguard_config_info"].GetMetric()) > 0 {
		t.Error("haguard_config_info has a series before a config is known")
	}
	for _, c := range processClasses {
		if v := metricstest.Value(fams, "haguard_processes", "class", c); v != 0 {
			t.Errorf("haguard_processes{class=%q} = %v, want 0 from the start", c, v)
		}
	}
	m.ObserveReload(Outcome{Result: ResultOK, Duration: 700 * time.Millisecond, Probes: ProbeTotals{OK: 5, Failed: 1}})
	m.ObserveReload(Outcome{Result: ResultRolledBack, Duration: 90 * time.Second})
	m.ObserveReload(Outcome{Duration: 500 * time.Second}) // no result: failed, above every bucket
	m.SetConfig(`we"ird\sha`)
	fams = metricstest.Gather(t, m)
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"haguard_reloads_total", "result", ResultOK, 1},
		{"haguard_reloads_total", "result", ResultRolledBack, 1},
		{"haguard_reloads_total", "result", ResultFailed, 1},
		{"haguard_reloads_total", "result", ResultRefused, 0},
		{"haguard_probe_attempts_total", "result", "ok", 5},
		{"haguard_probe_attempts_total", "result", "failed", 1},
		{"haguard_config_info", "sha256", `we"ird\sha`, 1},
	} {
		if got := metricstest.Value(fams, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}
	h := fams["haguard_reload_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() != 590.7 {
		t.Errorf("histogram count %d sum %v, want 3 and 590.7", h.GetSampleCount(), h.GetSampleSum())
	}
	want := map[float64]uint64{0.5: 0, 1: 1, 60: 1, 120: 2}
	for _, b := range h.GetBucket() {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	for _, name := range []string{"go_goroutines", "go_threads", "process_resident_memory_bytes", "process_cpu_seconds_total",
		"process_start_time_seconds", "process_open_fds", "process_max_fds"} {
		if v := metricstest.Value(fams, name, "", ""); v <= 0 {
			t.Errorf("%s = %v, want a positive value", name, v)
		}
	}
	if st := metricstest.Value(fams, "process_start_time_seconds", "", ""); st < float64(time.Now().Add(-24*time.Hour*365).Unix()) || st > float64(time.Now().Unix()+1) {
		t.Errorf("process_start_time_seconds = %v, not a plausible start", st)
	}
}

// haguard_findings follows ObserveFindings (the running config's check)
// only: a transaction's outcome carries the candidate's counts, which
// say nothing about what runs after a refusal or a rollback.
func TestFindingsOnlyFromTheRunningConfig(t *testing.T) {
	m := NewMetrics()
	m.ObserveFindings(map[string]int{"warning": 2})
	m.ObserveReload(Outcome{Result: ResultRefused, Counts: map[string]int{"error": 4}})
	fams := metricstest.Gather(t, m)
	if e, w := metricstest.Value(fams, "haguard_findings", "severity", "error"), metricstest.Value(fams, "haguard_findings", "severity", "warning"); e != 0 || w != 2 {
		t.Fatalf("haguard_findings error=%v warning=%v after a refused candidate; want the running config's 0 and 2", e, w)
	}
}

func TestMetricsHandler(t *testing.T) {
	m := NewMetrics()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); ct != metricsContentType {
		t.Errorf("Content-Type %q", ct)
	}
	body, _ := io.ReadAll(rec.Body)
	metricstest.Parse(t, body)
	if !bytes.HasPrefix(body, []byte("# HELP go_gc_cycles_total ")) {
		t.Errorf("families are not sorted by name:\n%.200s", body)
	}
}

func TestParseStat(t *testing.T) {
	// A command name with a space and a parenthesis, as proc(5) allows.
	line := "4242 (ha guard) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 7 0 12345 104857600 2560 18446744073709551615"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.cpuSeconds != 4 || st.threads != 7 || st.startTicks != 12345 || st.vsize != 104857600 || st.rss != 2560*float64(os.Getpagesize()) {
		t.Fatalf("%+v", st)
	}
	if _, err := parseStat([]byte("4242 (x) S 1")); err == nil {
		t.Fatal("a short line parsed")
	}
}

// The generation metrics have their series at 0 from the start (an alert
// sees a 0, not a missing series) and follow each assessment.
func TestGenerationMetrics(t *testing.T) {
	m := NewMetrics()
	fams := metricstest.Gather(t, m)
	for _, st := range genStates {
		if v := metricstest.Value(fams, "haguard_generations", "state", st); v != 0 {
			t.Errorf("haguard_generations{state=%q} = %v at start", st, v)
		}
	}
	for _, st := range escalSteps {
		if v := metricstest.Value(fams, "haguard_generation_escalations_total", "step", st); v != 0 {
			t.Errorf("haguard_generation_escalations_total{step=%q} = %v at start", st, v)
		}
	}
	m.ObserveGenerations(GenerationsSample{Current: 1, Draining: 3, OverLimit: 1, OldestAge: 7200, OldestRSS: 64 << 20})
	m.ObserveEscalation("report")
	m.ObserveEscalation("soft-stop")
	m.ObserveEscalation("soft-stop")
	fams = metricstest.Gather(t, m)
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"haguard_generations", "state", "draining", 3},
		{"haguard_generations", "state", "current", 1},
		{"haguard_generation_escalations_total", "step", "soft-stop", 2},
		{"haguard_generation_escalations_total", "step", "terminate", 0},
	} {
		if v := metricstest.Value(fams, c.name, c.label, c.value); v != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, v, c.want)
		}
	}
	for name, want := range map[string]float64{
		"haguard_generations_over_limit":                 1,
		"haguard_oldest_draining_generation_age_seconds": 7200,
		"haguard_oldest_draining_generation_rss_bytes":   64 << 20,
	} {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge().GetValue() != want {
			t.Errorf("%s = %v, want %v", name, f, want)
		}
	}
}
