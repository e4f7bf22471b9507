package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// Tier 3: the daemon's runtime routes run the real transaction: a PATCH
// reaches the worker and the file, GET shows it per process, drain with
// a wait returns once no process holds a session, and the metric counts.
func TestSystemAPIRuntimeChanges(t *testing.T) {
	ex := apiExamples(t)["Runtime changes: servers and map entries"]
	if ex.doc == nil {
		t.Fatal("docs/api.md has no JSON example under Runtime changes")
	}
	b := newServeBox(t, "")
	jsonHdr := map[string]string{"Content-Type": "application/json"}
	code, _, data := b.do(t, "PATCH", "/v1/backends/be_test/servers/s1", strings.NewReader(`{"weight": 5}`), jsonHdr)
	if code != 200 {
		t.Fatalf("PATCH: %d %s", code, data)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	for _, d := range conforms(ex.doc, v, "") {
		t.Errorf("docs/api.md, Runtime changes: %s", d)
	}
	if disk, err := os.ReadFile(b.s.HAProxyConfig()); err != nil || !strings.Contains(string(disk), "weight 5") {
		t.Fatalf("not written:\n%s", disk)
	}
	code, _, data = b.do(t, "GET", "/v1/backends/be_test/servers/s1", nil, nil)
	var row struct {
		Processes []struct {
			Current bool `json:"current"`
			State   struct {
				Weight int    `json:"weight"`
				State  string `json:"state"`
			} `json:"state"`
		} `json:"processes"`
		Drift []string `json:"drift"`
	}
	if err := json.Unmarshal(data, &row); code != 200 || err != nil || len(row.Processes) == 0 || row.Processes[0].State.Weight != 5 || len(row.Drift) != 0 {
		t.Fatalf("GET: %d %s", code, data)
	}
	if code, _, data = b.do(t, "PATCH", "/v1/backends/be_test/servers/nope", strings.NewReader(`{"weight": 5}`), jsonHdr); code != 404 {
		t.Fatalf("unknown server: %d %s", code, data)
	}
	code, _, data = b.do(t, "POST", "/v1/backends/be_test/servers/s1/drain?wait=20s", nil, nil)
	if code != 200 || !strings.Contains(string(data), `"done":true`) {
		t.Fatalf("drain: %d %s", code, data)
	}
	_, _, data = b.do(t, "GET", "/metrics", nil, nil)
	if !strings.Contains(string(data), `haguard_runtime_changes_total{unit="haproxy.service",kind="server",result="ok"} 2`) ||
		!strings.Contains(string(data), `haguard_runtime_changes_total{unit="haproxy.service",kind="server",result="refused"} 1`) {
		t.Fatalf("metrics:\n%s", data)
	}
}
