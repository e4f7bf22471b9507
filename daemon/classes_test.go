package daemon

import (
	"testing"
	"time"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/agent/sweep"
	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/internal/metricstest"
)

// processSeries reads haguard_processes by class from what m writes.
func processSeries(t *testing.T, m *api.Metrics) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	if mf := metricstest.Gather(t, m)["haguard_processes"]; mf != nil {
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
	m := api.NewMetrics()
	before := processSeries(t, m)
	if len(before) != len(procs.Classes) {
		t.Fatalf("series %v, classes %v", before, procs.Classes)
	}
	c := procs.Counts{Current: 1, Draining: 2, Ghost: 3, Divergent: 4, OtherUnit: 5, Foreign: 6, Conflict: 7}
	m.ObserveSweep(toSweepReport(sweep.Result{Started: time.Now(), Report: procs.Report{Counts: c}}))
	after := processSeries(t, m)
	for _, cl := range procs.Classes {
		if v, ok := before[string(cl)]; !ok || v != 0 {
			t.Errorf("before any sweep, class %s: %v %v", cl, v, ok)
		}
		if after[string(cl)] != float64(c.Of(cl)) {
			t.Errorf("class %s: %v, want %d", cl, after[string(cl)], c.Of(cl))
		}
	}
}
