package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/haguard/haguard/internal/metricstest"
)

// fakeRuntime records the requests; refuse makes every change refused.
type fakeRuntime struct {
	mu      sync.Mutex
	servers []ServerRequest
	maps    []MapRequest
	refuse  bool
}

func (f *fakeRuntime) Server(_ context.Context, be, srv string) (any, error) {
	if be != "be" {
		return nil, fmt.Errorf("%w: backend %s", ErrNotFound, be)
	}
	return map[string]string{"backend": be, "server": srv}, nil
}

func (f *fakeRuntime) SetServer(_ context.Context, req ServerRequest) (RuntimeOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers = append(f.servers, req)
	return RuntimeOutcome{Kind: "server", OK: !f.refuse, Body: map[string]any{"ok": !f.refuse}}, nil
}

func (f *fakeRuntime) MapEntry(_ context.Context, m, k string) (any, error) {
	return map[string]string{"map": m, "key": k}, nil
}

func (f *fakeRuntime) SetMapEntry(_ context.Context, req MapRequest) (RuntimeOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maps = append(f.maps, req)
	return RuntimeOutcome{Kind: "map", OK: !f.refuse, Body: map[string]any{"ok": !f.refuse}}, nil
}

func TestRuntimeRoutes(t *testing.T) {
	rt := &fakeRuntime{}
	e := newEnv(t, func(o *Options) { o.Runtime = rt })
	sha := strings.Repeat("a", 64)
	check := func(resp *http.Response, want int) string {
		t.Helper()
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want, b)
		}
		return string(b)
	}
	check(e.do(t, "GET", "/v1/backends/be/servers/s1", nil, nil), 200)
	check(e.do(t, "GET", "/v1/backends/nope/servers/s1", nil, nil), 404)
	check(e.do(t, "PATCH", "/v1/backends/be/servers/s1", strings.NewReader(`{"weight": 5, "state": "drain"}`),
		map[string]string{"Content-Type": "application/json", "If-Match": `"` + sha + `"`}), 200)
	check(e.do(t, "PATCH", "/v1/backends/be/servers/s1", strings.NewReader(`{"weight": 5}`),
		map[string]string{"Content-Type": "application/json", "If-Match": `"` + strings.Repeat("b", 64) + `"`}), 412)
	check(e.do(t, "PATCH", "/v1/backends/be/servers/s1", strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json"}), 422)
	check(e.do(t, "POST", "/v1/backends/be/servers/s1/drain?wait=30s", nil, nil), 200)
	check(e.do(t, "POST", "/v1/backends/be/servers/s1/drain?wait=forever", nil, nil), 422)
	check(e.do(t, "PUT", "/v1/maps/%2Fetc%2Fhaproxy%2Fhosts.map/entries/www.example.com", strings.NewReader(`{"value": "be2"}`),
		map[string]string{"Content-Type": "application/json"}), 200)
	check(e.do(t, "DELETE", "/v1/maps/%2Fetc%2Fhaproxy%2Fhosts.map/entries/www.example.com", nil, nil), 200)
	rt.refuse = true
	if body := check(e.do(t, "DELETE", "/v1/maps/hosts.map/entries/k", nil, nil), 409); !strings.Contains(body, `"ok":false`) {
		t.Fatalf("409 body %s", body)
	}
	if len(rt.servers) != 2 || rt.servers[0].Weight == nil || *rt.servers[0].Weight != 5 || rt.servers[0].IfMatch != sha ||
		rt.servers[1].State != "drain" || rt.servers[1].Wait.Seconds() != 30 {
		t.Fatalf("servers %+v", rt.servers)
	}
	if len(rt.maps) != 3 || rt.maps[0].Map != "/etc/haproxy/hosts.map" || rt.maps[0].Value != "be2" || !rt.maps[1].Delete {
		t.Fatalf("maps %+v", rt.maps)
	}
	got := map[string]float64{}
	for _, m := range metricstest.Gather(t, e.srv.Metrics())["haguard_runtime_changes_total"].GetMetric() {
		var k []string
		for _, l := range m.GetLabel() {
			k = append(k, l.GetName()+"="+l.GetValue())
		}
		got[strings.Join(k, ",")] = m.GetCounter().GetValue()
	}
	// The 412 and 422 are refusals too (nothing applied), counted once the
	// request reaches the changer only: the 412 and 404 here never did.
	want := map[string]float64{"kind=server,result=ok": 2, "kind=map,result=ok": 2, "kind=map,result=refused": 1,
		"kind=server,result=refused": 0, "kind=server,result=failed": 0, "kind=map,result=failed": 0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// Without a RuntimeChanger the routes answer 501.
func TestRuntimeRoutesWithoutMasterCLI(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.do(t, "GET", "/v1/backends/be/servers/s1", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("%d", resp.StatusCode)
	}
}
