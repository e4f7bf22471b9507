package api

import (
	"bytes"
	"io"
	"net/http"
	"sort"
	"sync"
)

// Process classes and finding severities that always have a series, so
// that an alert on haguard_processes{class="ghost"} > 0 sees a 0, not a
// missing series.
var (
	processClasses = []string{"current", "draining", "ghost", "divergent", "other-unit", "foreign", "conflict"}
	severities     = []string{"error", "warning", "info"}
	reloadResults  = []string{ResultOK, ResultUnchanged, ResultRolledBack, ResultRefused, ResultFailed}
	probeResults   = []string{"ok", "failed"}
	genStates      = []string{"current", "draining"}
	escalSteps     = []string{"report", "shutdown-sessions", "soft-stop", "terminate"}
	reloadBuckets  = []float64{0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120}
)

// Metrics are haguard's Prometheus metrics (docs/metrics.md), written in
// the text exposition format by WriteText. Only `haguard serve` builds
// them (NewMetrics): no command pays for them at start-up, and nothing is
// registered anywhere global. They are plain numbers under one mutex
// rather than client_golang collectors: that library's package init
// builds a global registry with the Go and process collectors, which cost
// every haguard command about 2.4 ms of its start-up (docs/benchmarks.md)
// for seven metrics only the daemon exports.
type Metrics struct {
	mu        sync.Mutex
	processes map[string]float64 // by class
	reloads   map[string]float64 // by result
	reloadDur histogram
	probes    map[string]float64 // by result
	findings  map[string]float64 // by severity
	lastSweep float64
	configSHA string
	// unit, when set, labels every series but the process-wide ones.
	unit string
	// The worker generations (docs/generations.md).
	generations map[string]float64 // by state
	genOver     float64
	oldestAge   float64
	oldestRSS   float64
	escalations map[string]float64 // by step
	// runtime counts runtime changes by kind and result.
	runtime map[[2]string]float64
}

// Runtime change kinds and results, every pair exported from the start.
var (
	runtimeKinds   = []string{"map", "server"}
	runtimeResults = []string{RuntimeFailed, RuntimeOK, RuntimeRefused}
)

// ObserveRuntime counts one runtime change (haguard_runtime_changes_total).
func (m *Metrics) ObserveRuntime(kind, result string) {
	m.mu.Lock()
	m.runtime[[2]string{kind, result}]++
	m.mu.Unlock()
}

func (m *Metrics) runtimeFamily() family {
	f := family{name: "haguard_runtime_changes_total", typ: "counter", help: "Runtime changes (no reload) by kind (server, map) and result (ok, refused, failed)."}
	keys := make([][2]string, 0, len(m.runtime))
	for k := range m.runtime {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		f.samples = append(f.samples, sample{labels: []label{{"kind", k[0]}, {"result", k[1]}}, value: m.runtime[k]})
	}
	return f
}

// NewMetrics creates the metrics, every label value of a fixed set at 0.
func NewMetrics() *Metrics {
	m := &Metrics{
		processes: zeroes(processClasses),
		reloads:   zeroes(reloadResults),
		reloadDur: histogram{bounds: reloadBuckets, counts: make([]uint64, len(reloadBuckets))},
		probes:    zeroes(probeResults),
		findings:  zeroes(severities),

		generations: zeroes(genStates),
		escalations: zeroes(escalSteps),
		runtime:     map[[2]string]float64{},
	}
	for _, k := range runtimeKinds {
		for _, r := range runtimeResults {
			m.runtime[[2]string{k, r}] = 0
		}
	}
	return m
}

func zeroes(keys []string) map[string]float64 {
	m := make(map[string]float64, len(keys))
	for _, k := range keys {
		m[k] = 0
	}
	return m
}

// ObserveSweep records one sweep.
func (m *Metrics) ObserveSweep(r SweepReport) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range processClasses {
		m.processes[c] = float64(r.Counts[c])
	}
	for c, n := range r.Counts {
		m.processes[c] = float64(n)
	}
	if !r.At.IsZero() {
		m.lastSweep = float64(r.At.UnixNano()) / 1e9
	}
}

// ObserveGenerations records one assessment of the worker generations.
func (m *Metrics) ObserveGenerations(s GenerationsSample) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.generations["current"] = float64(s.Current)
	m.generations["draining"] = float64(s.Draining)
	m.genOver = float64(s.OverLimit)
	m.oldestAge, m.oldestRSS = s.OldestAge, s.OldestRSS
}

// ObserveEscalation counts one escalation step taken on an old
// generation (report, shutdown-sessions, soft-stop, terminate).
func (m *Metrics) ObserveEscalation(step string) {
	m.mu.Lock()
	m.escalations[step]++
	m.mu.Unlock()
}

// ObserveReload records one finished transaction: its result, its
// duration and its probes. Its findings are the candidate's, not the
// running config's, so they are not recorded here (ObserveFindings).
func (m *Metrics) ObserveReload(o Outcome) {
	result := o.Result
	if result == "" {
		result = ResultFailed
	}
	m.mu.Lock()
	m.reloads[result]++
	m.reloadDur.observe(o.Duration.Seconds())
	m.mu.Unlock()
	m.ObserveProbes(o.Probes)
}

// ObserveFindings sets haguard_findings from the check of the running
// config. A candidate's check (POST /v1/check, a refused reload) must not
// come here: the alert on it says the running config has findings.
func (m *Metrics) ObserveFindings(counts map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range severities {
		m.findings[s] = float64(counts[s])
	}
	for s, n := range counts {
		m.findings[s] = float64(n)
	}
}

// ObserveProbes adds probe attempts.
func (m *Metrics) ObserveProbes(t ProbeTotals) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.probes["ok"] += float64(t.OK)
	m.probes["failed"] += float64(t.Failed)
}

// SetConfig sets haguard_config_info to the running config's sha256. A
// scrape sees exactly one series, or none before a config is known.
// SetUnit names the unit the metrics are about: every series but the
// process-wide ones (Go runtime, process) carries unit="NAME", so that one
// daemon watching several units exports one series per unit.
func (m *Metrics) SetUnit(name string) {
	m.mu.Lock()
	m.unit = name
	m.mu.Unlock()
}

func (m *Metrics) SetConfig(sha string) {
	m.mu.Lock()
	m.configSHA = sha
	m.mu.Unlock()
}

// WriteText writes every metric in Prometheus's text exposition format
// (version 0.0.4), families sorted by name as client libraries do.
func (m *Metrics) WriteText(w io.Writer) error { return WriteText(w, m) }

// WriteText writes the series of every ms (one per unit) and the
// process-wide ones once: each family once, its samples unit by unit.
func WriteText(w io.Writer, ms ...*Metrics) error {
	byName := map[string]*family{}
	var fams []*family
	add := func(f family) {
		if have, ok := byName[f.name]; ok {
			have.samples = append(have.samples, f.samples...)
			return
		}
		fams = append(fams, &f)
		byName[f.name] = &f
	}
	for _, m := range ms {
		for _, f := range m.families() {
			add(f)
		}
	}
	for _, f := range runtimeFamilies() {
		add(f)
	}
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })
	var b bytes.Buffer
	for _, f := range fams {
		f.write(&b)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// families are m's own series, labelled with its unit when it has one.
func (m *Metrics) families() []family {
	m.mu.Lock()
	defer m.mu.Unlock()
	fams := []family{
		labelled("haguard_processes", "gauge", "haproxy processes by class in the last sweep (current, draining, ghost, divergent, other-unit, foreign, conflict).", "class", m.processes),
		labelled("haguard_reloads_total", "counter", "Reload transactions by result (ok, unchanged, rolled_back, refused, failed).", "result", m.reloads),
		m.reloadDur.family("haguard_reload_duration_seconds", "Wall time of reload transactions."),
		labelled("haguard_probe_attempts_total", "counter", "Probe attempts by result (ok, failed).", "result", m.probes),
		labelled("haguard_findings", "gauge", "Findings by severity of the running config's check.", "severity", m.findings),
		single("haguard_last_sweep_timestamp_seconds", "gauge", "Unix time of the last completed ghost sweep.", m.lastSweep),
		labelled("haguard_generations", "gauge", "haproxy worker generations in the last sweep by state (current, draining).", "state", m.generations),
		single("haguard_generations_over_limit", "gauge", "Draining generations over a limit of haguard.yaml's generations block in the last sweep.", m.genOver),
		single("haguard_oldest_draining_generation_age_seconds", "gauge", "Age of the oldest draining generation (0 when none drains).", m.oldestAge),
		single("haguard_oldest_draining_generation_rss_bytes", "gauge", "Resident memory of the oldest draining generation's workers (0 when none drains).", m.oldestRSS),
		labelled("haguard_generation_escalations_total", "counter", "Escalation steps taken on old generations over a limit, by step (report, shutdown-sessions, soft-stop, terminate).", "step", m.escalations),
	}
	info := family{name: "haguard_config_info", typ: "gauge", help: "Always 1; the label is the sha256 of the running haproxy config."}
	if m.configSHA != "" {
		info.samples = []sample{{labels: []label{{"sha256", m.configSHA}}, value: 1}}
	}
	fams = append(fams, info, m.runtimeFamily())
	if m.unit != "" {
		for _, f := range fams {
			for i := range f.samples {
				f.samples[i].labels = append([]label{{"unit", m.unit}}, f.samples[i].labels...)
			}
		}
	}
	return fams
}

// metricsContentType is the text format's media type.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the metrics (GET /metrics).
func (m *Metrics) Handler() http.Handler { return Handler(m) }

// Handler serves the metrics of every ms (GET /metrics).
func Handler(ms ...*Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b bytes.Buffer
		if err := WriteText(&b, ms...); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", metricsContentType)
		_, _ = w.Write(b.Bytes())
	})
}

// histogram is a cumulative Prometheus histogram without labels.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

func (h *histogram) observe(v float64) {
	for i, b := range h.bounds {
		if v <= b {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += v
}
