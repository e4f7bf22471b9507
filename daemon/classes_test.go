package daemon

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/agent/sweep"
	"github.com/haguard/haguard/api"
)

// processSeries reads haguard_processes by class from reg.
func processSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "haguard_processes" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "class" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// TestEveryClassHasASeries: every class agent/procs reports is a label
// of haguard_processes before any sweep (at 0, so an alert never sees a
// missing series) and carries the sweep's count after one. The API keeps
// its own list of class names (it imports none of haguard's packages);
// this is where the two are held together.
func TestEveryClassHasASeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := api.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	before := processSeries(t, reg)
	if len(before) != len(procs.Classes) {
		t.Fatalf("series %v, classes %v", before, procs.Classes)
	}
	c := procs.Counts{Current: 1, Draining: 2, Ghost: 3, Divergent: 4, OtherUnit: 5, Foreign: 6, Conflict: 7}
	m.ObserveSweep(toSweepReport(sweep.Result{Started: time.Now(), Report: procs.Report{Counts: c}}))
	after := processSeries(t, reg)
	for _, cl := range procs.Classes {
		if v, ok := before[string(cl)]; !ok || v != 0 {
			t.Errorf("before any sweep, class %s: %v %v", cl, v, ok)
		}
		if after[string(cl)] != float64(c.Of(cl)) {
			t.Errorf("class %s: %v, want %d", cl, after[string(cl)], c.Of(cl))
		}
	}
}
