package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/internal/metricstest"
	"github.com/haguard/haguard/internal/testbed"
)

// TestServeUnits, issue 14 item 4: one `haguard serve` watches
// haproxy.service and every haproxy@*.service (systemd.units). A request
// names its unit; a REST reload of haproxy@second.service installs and
// loads that instance's config and leaves haproxy.service's alone; each
// unit has its own state dir and its own metrics series.
func TestServeUnits(t *testing.T) {
	b := newServeBox(t, "")
	secondListen := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	secondCfg := testbed.TCPProxyConfig(secondListen, testbed.TCPBackend(t))
	second := b.s.StartHAProxyInstance(t, "second", secondCfg)
	secondPath := filepath.Join(b.s.Dir(), "haproxy-second.cfg")

	yaml := filepath.Join(b.s.Dir(), "haguard.yaml")
	y, err := os.ReadFile(yaml)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, yaml, string(y)+"systemd:\n  units: [haproxy.service, \"haproxy@*.service\"]\n", 0o644)
	b.systemctl(t, "restart", "haguard.service")

	code, _, data := b.do(t, "GET", "/v1/status", nil, nil)
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(data), second) {
		t.Fatalf("status without ?unit= from a daemon of two units: %d %s", code, data)
	}
	for _, u := range []string{"haproxy.service", second} {
		code, _, data := b.do(t, "GET", "/v1/status?unit="+u, nil, nil)
		var st struct {
			Unit *api.UnitStatus `json:"unit"`
		}
		if code != 200 || json.Unmarshal(data, &st) != nil || st.Unit == nil || st.Unit.Unit != u || st.Unit.ActiveState != "active" {
			t.Fatalf("status of %s: %d %s\n%s", u, code, data, b.journal(t))
		}
	}

	cand := strings.Replace(secondCfg, "timeout client 30s", "timeout client 32s", 1)
	if cand == secondCfg {
		t.Fatal("the candidate changes nothing")
	}
	code, hdr, data := b.do(t, "POST", "/v1/reloads?unit="+second, strings.NewReader(cand), map[string]string{"If-Match": sha(secondCfg)})
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/reloads?unit=%s: %d %s", second, code, data)
	}
	j := b.waitAt(t, hdr.Get("Location"))
	if j.Result != api.ResultOK {
		t.Fatalf("reload of %s: %+v\n%s", second, j, b.journal(t))
	}
	if disk, err := os.ReadFile(secondPath); err != nil || string(disk) != cand {
		t.Fatalf("%s's config is not the candidate (%v)", second, err)
	}
	if disk, err := os.ReadFile(b.s.HAProxyConfig()); err != nil || string(disk) != b.good {
		t.Fatalf("haproxy.service's config changed (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(b.state, "units", second, "history")); err != nil {
		t.Errorf("%s has no history in its own state dir: %v", second, err)
	}

	code, _, data = b.do(t, "GET", "/metrics", nil, nil)
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, data)
	}
	fams := metricstest.Parse(t, data)
	for u, want := range map[string]float64{"haproxy.service": 0, second: 1} {
		got := -1.0
		for _, m := range fams["haguard_reloads_total"].GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["unit"] == u && l["result"] == api.ResultOK {
				got = m.GetCounter().GetValue()
			}
		}
		if got != want {
			t.Errorf(`haguard_reloads_total{unit=%q,result="ok"} = %v, want %v`, u, got, want)
		}
	}
}
