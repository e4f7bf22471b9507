package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/haguard/haguard/internal/metricstest"
)

func TestOpenAPIMatchesDocs(t *testing.T) {
	docs, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, OpenAPIDocument()) {
		t.Fatal("docs/openapi.json and api/openapi.json differ: edit one, copy it to the other")
	}
}

// TestOpenAPIMatchesRoutes fails when a registered route is missing from
// the document or the document describes a route that does not exist.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, nil)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPIDocument(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q is not 3.x", doc.OpenAPI)
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	param := regexp.MustCompile(`:([a-zA-Z_]+)`)
	var registered []string
	for _, r := range e.srv.echo.Routes() {
		if r.Method == echo.RouteNotFound || strings.HasSuffix(r.Path, "*") {
			continue
		}
		registered = append(registered, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	sort.Strings(documented)
	sort.Strings(registered)
	if strings.Join(documented, "\n") != strings.Join(registered, "\n") {
		t.Fatalf("routes and docs/openapi.json disagree\nregistered:\n%s\ndocumented:\n%s",
			strings.Join(registered, "\n"), strings.Join(documented, "\n"))
	}
	// The served document is the embedded one.
	resp := e.do(t, "GET", "/v1/openapi.json", nil, nil)
	if b := readAll(t, resp); b != string(OpenAPIDocument()) {
		t.Fatal("served document differs from the embedded one")
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t, nil)
	var body struct {
		OK       bool             `json:"ok"`
		Findings []map[string]any `json:"findings"`
		Counts   map[string]int   `json:"counts"`
	}
	resp := e.do(t, "POST", "/v1/check", strings.NewReader("defaults\n  timeout client 5\n"), nil)
	decode(t, resp, 200, &body)
	if body.OK || len(body.Findings) != 1 || body.Counts["error"] != 1 {
		t.Fatalf("check: %+v", body)
	}
	resp = e.do(t, "POST", "/v1/check", strings.NewReader("global\n"), nil)
	decode(t, resp, 200, &body)
	if !body.OK {
		t.Fatalf("clean check: %+v", body)
	}
	resp = e.do(t, "POST", "/v1/check", strings.NewReader("bogus\n"), nil)
	decode(t, resp, 200, &body)
	if body.OK {
		t.Fatalf("a config haproxy -c refuses is ok: %+v", body)
	}
	resp = e.do(t, "POST", "/v1/check", strings.NewReader("  \n"), nil)
	wantError(t, resp, http.StatusUnprocessableEntity, "validation_failed")
}

func TestGetReloadAndHistory(t *testing.T) {
	e := newEnv(t, nil)
	for _, id := range []string{"nope", "..", ".hidden", "a%2F..%2Fetc", strings.Repeat("x", 65)} {
		resp := e.do(t, "GET", "/v1/reloads/"+id, nil, nil)
		wantError(t, resp, http.StatusNotFound, "not_found")
	}
	// An id the queue no longer remembers comes from the reloader's history.
	var j JobView
	decode(t, e.do(t, "GET", "/v1/reloads/old-1", nil, nil), 200, &j)
	if j.State != stateDone || j.Transaction == nil {
		t.Fatalf("history id: %+v", j)
	}
	var h struct {
		Active  []JobView        `json:"active"`
		History []map[string]any `json:"history"`
	}
	decode(t, e.do(t, "GET", "/v1/reloads?limit=5", nil, nil), 200, &h)
	if len(h.History) != 1 || h.Active == nil {
		t.Fatalf("history: %+v", h)
	}
	wantError(t, e.do(t, "GET", "/v1/reloads?limit=0", nil, nil), 422, "validation_failed")
	wantError(t, e.do(t, "DELETE", "/v1/reloads", nil, nil), 405, "method_not_allowed")
	wantError(t, e.do(t, "GET", "/v1/nothing", nil, nil), 404, "not_found")
}

func TestRollback(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.do(t, "POST", "/v1/rollback", strings.NewReader(`{"to":"old-1"}`), nil)
	var j JobView
	decode(t, resp, http.StatusAccepted, &j)
	if j.Kind != kindRollback {
		t.Fatalf("rollback job: %+v", j)
	}
	waitDone(t, e, j.ID)
	if len(e.rel.rolls) != 1 || e.rel.rolls[0].To != "old-1" || e.rel.rolls[0].ID != j.ID {
		t.Fatalf("reloader saw %+v", e.rel.rolls)
	}
	for _, bad := range []string{`{"to":"../../etc/haproxy"}`, `{"path":"/etc/passwd"}`, `{`, `{"to":"a"} {}`} {
		resp := e.do(t, "POST", "/v1/rollback", strings.NewReader(bad), nil)
		wantError(t, resp, http.StatusUnprocessableEntity, "validation_failed")
	}
}

func TestGhosts(t *testing.T) {
	e := newEnv(t, nil)
	var s struct {
		Counts    map[string]int   `json:"counts"`
		Processes []map[string]any `json:"processes"`
		Ghosts    int              `json:"ghosts"`
		Fresh     bool             `json:"fresh"`
	}
	// No sweep yet: one runs.
	decode(t, e.do(t, "GET", "/v1/ghosts", nil, nil), 200, &s)
	if !s.Fresh || s.Ghosts != 1 || len(s.Processes) != 1 {
		t.Fatalf("first ghosts: %+v", s)
	}
	decode(t, e.do(t, "GET", "/v1/ghosts", nil, nil), 200, &s)
	if s.Fresh || e.ghosts.sweeps != 1 {
		t.Fatalf("cached ghosts ran a sweep: %+v sweeps=%d", s, e.ghosts.sweeps)
	}
	decode(t, e.do(t, "GET", "/v1/ghosts?fresh=1", nil, nil), 200, &s)
	if !s.Fresh || e.ghosts.sweeps != 2 {
		t.Fatalf("fresh=1 did not sweep: %+v", s)
	}
	wantError(t, e.do(t, "GET", "/v1/ghosts?fresh=yes", nil, nil), 422, "validation_failed")
}

func TestProbes(t *testing.T) {
	e := newEnv(t, nil)
	var r ProbeReport
	decode(t, e.do(t, "POST", "/v1/probes", nil, nil), 200, &r)
	if r.Totals.OK != 3 {
		t.Fatalf("probes: %+v", r)
	}
	for _, bad := range []string{`{"count":-1}`, `{"count":100000}`, `{"targets":["/run/haproxy/admin.sock"]}`, `{"unknown":1}`} {
		wantError(t, e.do(t, "POST", "/v1/probes", strings.NewReader(bad), nil), 422, "validation_failed")
	}
	// A prober error is a 500 with the JSON error body.
	wantError(t, e.do(t, "POST", "/v1/probes", strings.NewReader(`{"targets":["127.0.0.1:1"]}`), nil), 500, "internal")
}

func TestStatusAndMetrics(t *testing.T) {
	e := newEnv(t, nil)
	waitDone(t, e, postReload(t, e, "global\n", nil).ID)
	decode(t, e.do(t, "GET", "/v1/ghosts", nil, nil), 200, &map[string]any{})
	decode(t, e.do(t, "POST", "/v1/probes", nil, nil), 200, &map[string]any{})
	// A candidate with findings, checked: they are not the running config's.
	var chk checkBody
	decode(t, e.do(t, "POST", "/v1/check", strings.NewReader("defaults\n  timeout client 5\n"), nil), 200, &chk)
	if chk.Counts["error"] == 0 {
		t.Fatalf("the fake checker found nothing: %+v", chk)
	}
	var st statusBody
	decode(t, e.do(t, "GET", "/v1/status", nil, nil), 200, &st)
	if st.Unit == nil || st.Unit.Generation != 3 || st.LastReload == nil || st.LastReload.Result != ResultOK ||
		st.LastSweep == nil || st.LastSweep.Ghosts != 1 || len(st.ConfigSHA256) != 64 {
		t.Fatalf("status: %+v", st)
	}
	metrics := readAll(t, e.do(t, "GET", "/metrics", nil, nil))
	sha, _ := e.hash.RunningSHA256(t.Context())
	for _, want := range []string{
		`haguard_reloads_total{result="ok"} 1`,
		`haguard_reloads_total{result="rolled_back"} 0`,
		`haguard_reload_duration_seconds_bucket{le="0.25"} 1`,
		`haguard_reload_duration_seconds_count 1`,
		`haguard_processes{class="ghost"} 1`,
		`haguard_processes{class="divergent"} 0`,
		`haguard_processes{class="current"} 2`,
		`haguard_probe_attempts_total{result="ok"} 43`,
		`haguard_probe_attempts_total{result="failed"} 1`,
		// Neither the reload's candidate nor the checked one moved them:
		// only the daemon's check of the running config does.
		`haguard_findings{severity="warning"} 0`,
		`haguard_findings{severity="error"} 0`,
		`haguard_last_sweep_timestamp_seconds 1.7e+09`,
		fmt.Sprintf(`haguard_config_info{sha256="%s"} 1`, sha),
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Count(metrics, "haguard_config_info{") != 1 {
		t.Errorf("more than one config_info series:\n%s", metrics)
	}
}

// TestStatusCallsShared: requests that arrive while a status call is in
// flight share it.
func TestStatusCallsShared(t *testing.T) {
	fs := &fakeStatus{gate: make(chan struct{})}
	e := newEnv(t, func(o *Options) { o.Status = fs })
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			var st statusBody
			decode(t, e.do(t, "GET", "/v1/status", nil, nil), 200, &st)
			if st.Unit == nil || st.Unit.ActiveState != "active" {
				t.Errorf("status: %+v", st)
			}
		})
	}
	// Let the requests pile up on the first call, then release it.
	for i := 0; fs.calls.Load() == 0 && i < 10000; i++ {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(fs.gate)
	wg.Wait()
	if c := fs.calls.Load(); c >= n {
		t.Fatalf("%d status calls for %d concurrent requests", c, n)
	}
}

func TestSetToken(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.srv.SetToken(nil); err == nil {
		t.Fatal("empty token accepted")
	}
	if err := e.srv.SetToken([]byte("a-brand-new-token-0123456789")); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.do(t, "GET", "/v1/status", nil, nil), 401, "unauthorized")
	resp := e.do(t, "GET", "/v1/status", nil, map[string]string{"Authorization": "Bearer a-brand-new-token-0123456789"})
	if b := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("new token: %d %s", resp.StatusCode, b)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("wrapped: %w", &ValidationError{Field: "x", Reason: "y"}), 422, "validation_failed"},
		{fmt.Errorf("wrapped: %w", &BusyError{Running: "a"}), 409, "reload_running"},
		{fmt.Errorf("wrapped: %w", &PreconditionError{Want: "a", Have: "b"}), 412, "precondition_failed"},
		{fmt.Errorf("wrapped: %w", &http.MaxBytesError{Limit: 10}), 413, "body_too_large"},
		{fmt.Errorf("wrapped: %w", errUnauthorized), 401, "unauthorized"},
		{fmt.Errorf("wrapped: %w", ErrNotFound), 404, "not_found"},
		{fmt.Errorf("wrapped: %w", &QueueFullError{Depth: 1}), 503, "queue_full"},
		{errShuttingDown, 503, "shutting_down"},
		{errors.New("boom"), 500, "internal"},
		{echo.ErrNotFound, 404, "not_found"},
		{echo.ErrMethodNotAllowed, 405, "method_not_allowed"},
		{echo.NewHTTPError(400, "bad"), 400, "bad_request"},
	} {
		status, code, msg := classify(c.err)
		if status != c.status || code != c.code || msg == "" {
			t.Errorf("classify(%v) = %d %s %q, want %d %s", c.err, status, code, msg, c.status, c.code)
		}
	}
}

// TestMetricsDocumented fails when a haguard_ metric is missing from
// docs/metrics.md.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	e.srv.Metrics().SetConfig(strings.Repeat("d", 64)) // config_info has a series once a config is known
	n := 0
	for name := range metricstest.Gather(t, e.srv.Metrics()) {
		if strings.HasPrefix(name, "haguard_") {
			n++
			if !strings.Contains(string(doc), "`"+name+"`") {
				t.Errorf("%s is not documented in docs/metrics.md", name)
			}
		}
	}
	if n != 13 {
		t.Errorf("%d haguard_ metrics registered, want 13 (the 7 of the first issue, the 5 of old generations' of issue 20, haguard_runtime_changes_total of issue 22)", n)
	}
}
