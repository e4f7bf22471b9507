package api

import (
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A scrape during a config change sees exactly one haguard_config_info
// series, never none and never two.
func TestConfigInfoOneSeriesWhileChanging(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
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
	for range 2000 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mf := range mfs {
			if mf.GetName() == "haguard_config_info" {
				n = len(mf.GetMetric())
			}
		}
		if n != 1 {
			t.Fatalf("a scrape saw %d haguard_config_info series", n)
		}
	}
}
