package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/metricstest"
	"github.com/haguard/haguard/internal/testbed"
)

// haguard_findings is the running config's: after a reload to a config
// with warnings the metric equals what `haguard check` finds in the
// running config, and a candidate with an error checked through POST
// /v1/check changes nothing (it used to set the metric, so the alert
// said the running config had errors).
func TestServeFindingsAreTheRunningConfigs(t *testing.T) {
	b := newServeBox(t, "")
	longIdle := strings.NewReplacer("timeout client 30s", "timeout client 10m", "timeout server 30s", "timeout server 10m").Replace(b.good)
	code, _, data := b.do(t, "POST", "/v1/reloads", strings.NewReader(longIdle), map[string]string{"Content-Type": "text/plain"})
	if code != 202 {
		t.Fatalf("POST /v1/reloads: %d %s", code, data)
	}
	var job struct{ ID string }
	if err := json.Unmarshal(data, &job); err != nil {
		t.Fatal(err)
	}
	if j := b.waitJob(t, job.ID); j.Result != "ok" {
		t.Fatalf("reload: %+v", j)
	}

	// What the command line finds in the running config.
	out, errOut, err := b.s.Run(t.Context(), testbed.BuildHaguard(t), "--config-file", filepath.Join(b.s.Dir(), "haguard.yaml"), "check", "--format", "json")
	if err != nil && !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("haguard check: %v\n%s%s", err, out, errOut)
	}
	var rep struct{ Summary map[string]float64 }
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("haguard check --format json: %v\n%s", err, out)
	}
	if rep.Summary["warning"] == 0 {
		t.Fatalf("the long-idle config has no warning, so the test shows nothing: %s", out)
	}

	findings := func() map[string]float64 {
		code, _, data := b.do(t, "GET", "/metrics", nil, nil)
		if code != 200 {
			t.Fatalf("GET /metrics: %d %s", code, data)
		}
		fams := metricstest.Parse(t, data)
		got := map[string]float64{}
		for _, s := range []string{"error", "warning", "info"} {
			got[s] = metricstest.Value(fams, "haguard_findings", "severity", s)
		}
		return got
	}
	same := func(got map[string]float64) bool {
		for _, s := range []string{"error", "warning", "info"} {
			if got[s] != rep.Summary[s] {
				return false
			}
		}
		return true
	}
	// The sweep after the reload sees the new identity and checks it.
	var got map[string]float64
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if got = findings(); same(got) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("haguard_findings %v, never the running config's %v\n%s", got, rep.Summary, b.journal(t))
		}
	}

	bad := strings.Replace(b.good, "timeout client 30s", "timeout client 30", 1) // HA001, an error
	code, _, data = b.do(t, "POST", "/v1/check", strings.NewReader(bad), map[string]string{"Content-Type": "text/plain"})
	if code != 200 || !strings.Contains(string(data), `"severity":"error"`) {
		t.Fatalf("POST /v1/check of a candidate with an error: %d %s", code, data)
	}
	b.do(t, "GET", "/v1/ghosts?fresh=1", nil, nil) // a sweep, as the daemon runs them
	if after := findings(); !same(after) {
		t.Errorf("after a candidate was checked, haguard_findings is %v; the running config's is %v", after, rep.Summary)
	}
}

// --unit completes from the units systemd has loaded, over D-Bus, in the
// box as on a host.
func TestUnitCompletionInSandbox(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	s := testbed.Boot(t)
	s.StartHAProxy(t, testbed.TCPProxyConfig(fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t)), testbed.TCPBackend(t)))
	out, errOut, err := s.Run(t.Context(), testbed.BuildHaguard(t), "__complete", "reload", "--unit", "")
	if err != nil {
		t.Fatalf("__complete: %v\n%s%s", err, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || lines[0] != "haproxy.service" || lines[len(lines)-1] != ":4" {
		t.Fatalf("haguard reload --unit <TAB> offered %q, want haproxy.service (no file names)", lines)
	}
	if out, _, _ := s.Run(t.Context(), testbed.BuildHaguard(t), "__complete", "reload", "--unit", "nginx"); strings.Contains(out, "haproxy") {
		t.Errorf("--unit nginx<TAB> offered %q", out)
	}
}
