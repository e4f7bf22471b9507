package api

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Process classes and finding severities that always have a series, so
// that an alert on haguard_processes{class="ghost"} > 0 sees a 0, not a
// missing series.
var (
	processClasses = []string{"current", "draining", "ghost", "divergent", "other-unit", "foreign", "conflict"}
	severities     = []string{"error", "warning", "info"}
	reloadResults  = []string{ResultOK, ResultUnchanged, ResultRolledBack, ResultRefused, ResultFailed}
)

// Metrics are haguard's Prometheus metrics (docs/metrics.md), registered
// on a registry the caller owns; nothing touches the global default one.
type Metrics struct {
	processes     *prometheus.GaugeVec
	reloads       *prometheus.CounterVec
	reloadSeconds prometheus.Histogram
	probes        *prometheus.CounterVec
	findings      *prometheus.GaugeVec
	lastSweep     prometheus.Gauge
	configInfo    *prometheus.Desc

	mu        sync.Mutex
	configSHA string
}

// NewMetrics creates the metrics and registers them, with the Go runtime
// and process collectors, on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		processes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "haguard_processes",
			Help: "haproxy processes by class in the last sweep (current, draining, ghost, divergent, other-unit, foreign, conflict).",
		}, []string{"class"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haguard_reloads_total",
			Help: "Reload transactions by result (ok, unchanged, rolled_back, refused, failed).",
		}, []string{"result"}),
		reloadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "haguard_reload_duration_seconds",
			Help:    "Wall time of reload transactions.",
			Buckets: []float64{0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120},
		}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haguard_probe_attempts_total",
			Help: "Probe attempts by result (ok, failed).",
		}, []string{"result"}),
		findings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "haguard_findings",
			Help: "Findings by severity in the last check.",
		}, []string{"severity"}),
		lastSweep: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "haguard_last_sweep_timestamp_seconds",
			Help: "Unix time of the last completed ghost sweep.",
		}),
		configInfo: prometheus.NewDesc("haguard_config_info",
			"Always 1; the label is the sha256 of the running haproxy config.", []string{"sha256"}, nil),
	}
	cs := []prometheus.Collector{
		m.processes, m.reloads, m.reloadSeconds, m.probes, m.findings, m.lastSweep, configInfo{m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	for _, c := range processClasses {
		m.processes.WithLabelValues(c)
	}
	for _, r := range reloadResults {
		m.reloads.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed"} {
		m.probes.WithLabelValues(r)
	}
	for _, s := range severities {
		m.findings.WithLabelValues(s)
	}
	return m, nil
}

// ObserveSweep records one sweep.
func (m *Metrics) ObserveSweep(r SweepReport) {
	for _, c := range processClasses {
		m.processes.WithLabelValues(c).Set(float64(r.Counts[c]))
	}
	for c, n := range r.Counts {
		m.processes.WithLabelValues(c).Set(float64(n))
	}
	if !r.At.IsZero() {
		m.lastSweep.Set(float64(r.At.UnixNano()) / 1e9)
	}
}

// ObserveReload records one finished transaction.
func (m *Metrics) ObserveReload(o Outcome) {
	result := o.Result
	if result == "" {
		result = ResultFailed
	}
	m.reloads.WithLabelValues(result).Inc()
	m.reloadSeconds.Observe(o.Duration.Seconds())
	if o.Counts != nil {
		m.ObserveFindings(o.Counts)
	}
	m.ObserveProbes(o.Probes)
}

// ObserveFindings sets haguard_findings from one check's counts.
func (m *Metrics) ObserveFindings(counts map[string]int) {
	for _, s := range severities {
		m.findings.WithLabelValues(s).Set(float64(counts[s]))
	}
	for s, n := range counts {
		m.findings.WithLabelValues(s).Set(float64(n))
	}
}

// ObserveProbes adds probe attempts.
func (m *Metrics) ObserveProbes(t ProbeTotals) {
	m.probes.WithLabelValues("ok").Add(float64(t.OK))
	m.probes.WithLabelValues("failed").Add(float64(t.Failed))
}

// SetConfig sets haguard_config_info to the running config's sha256.
func (m *Metrics) SetConfig(sha string) {
	m.mu.Lock()
	m.configSHA = sha
	m.mu.Unlock()
}

// configInfo collects haguard_config_info from the sha under the lock, so
// a scrape sees exactly one series, or none before a config is known: a
// GaugeVec reset then set again left a moment with none.
type configInfo struct{ m *Metrics }

func (c configInfo) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.configInfo }

func (c configInfo) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	sha := c.m.configSHA
	c.m.mu.Unlock()
	if sha != "" {
		ch <- prometheus.MustNewConstMetric(c.m.configInfo, prometheus.GaugeValue, 1, sha)
	}
}
