// Package metricstest reads what api.Metrics writes with Prometheus's own
// text-format parser, for tests: a scrape that Prometheus could not read
// fails here. It is imported by tests only; the shipped binary links no
// Prometheus library.
package metricstest

import (
	"bytes"
	"io"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Writer is what api.Metrics offers.
type Writer interface{ WriteText(w io.Writer) error }

// Gather writes m and parses it back: the metric families by name.
func Gather(t testing.TB, m Writer) map[string]*dto.MetricFamily {
	t.Helper()
	var b bytes.Buffer
	if err := m.WriteText(&b); err != nil {
		t.Fatalf("write metrics: %v", err)
	}
	return Parse(t, b.Bytes())
}

// Parse parses a scrape in the text exposition format.
func Parse(t testing.TB, scrape []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(scrape))
	if err != nil {
		t.Fatalf("Prometheus cannot parse the scrape: %v\n%s", err, scrape)
	}
	return fams
}

// Value is the value of name{label=value} (label "" for a series without
// labels), a counter's, a gauge's or an untyped one's; -1 when absent.
func Value(fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	mf, ok := fams[name]
	if !ok {
		return -1
	}
	for _, m := range mf.GetMetric() {
		if label != "" {
			match := false
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Untyped != nil:
			return m.GetUntyped().GetValue()
		}
	}
	return -1
}
