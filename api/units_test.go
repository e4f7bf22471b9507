package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/haguard/haguard/internal/metricstest"
)

// TestUnitsRouteByQuery: a daemon serving two units needs ?unit= on every
// unit's route, sends each request to that unit's reloader (with its own
// queue), and exports each unit's series under its unit label.
func TestUnitsRouteByQuery(t *testing.T) {
	second := &fakeReloader{hasher: &fakeHasher{sha: strings.Repeat("b", 64)}}
	e := newEnv(t, func(o *Options) {
		o.Unit = "haproxy.service"
		o.More = []UnitBackend{{Unit: "haproxy@second.service", Checker: fakeChecker{}, Reloader: second,
			Hasher: second.hasher, Ghosts: &fakeGhosts{}, Prober: fakeProber{}, Status: &fakeStatus{}}}
	})

	for _, path := range []string{"/v1/status", "/v1/reloads", "/v1/ghosts", "/v1/reloads/old-1"} {
		resp := e.do(t, http.MethodGet, path, nil, nil)
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "haproxy@second.service") {
			t.Errorf("GET %s without unit = %d %s; want 422 naming the units", path, resp.StatusCode, body)
		}
	}
	resp := e.do(t, http.MethodGet, "/v1/status?unit=nginx.service", nil, nil)
	if body := readAll(t, resp); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `unit: \"nginx.service\" is not served`) {
		t.Errorf("unknown unit = %d %s; want 422 on field unit", resp.StatusCode, body)
	}

	resp = e.do(t, http.MethodPost, "/v1/reloads?unit=haproxy@second.service", strings.NewReader("global\n"), nil)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST reload to the second unit = %d %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasSuffix(loc, "?unit=haproxy%40second.service") {
		t.Errorf("Location %q does not name the unit", loc)
	}
	if v := waitAt(t, e, loc); v.Result != ResultOK {
		t.Errorf("the second unit's job = %+v", v)
	}
	if n, _ := second.stats(); n != 1 {
		t.Errorf("the second unit's reloader ran %d transactions, want 1", n)
	}
	if n, _ := e.rel.stats(); n != 0 {
		t.Errorf("the first unit's reloader ran %d transactions, want 0", n)
	}
	resp = e.do(t, http.MethodGet, strings.TrimSuffix(loc, "?unit=haproxy%40second.service"), nil, nil)
	if body := readAll(t, resp); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("the job without its unit = %d %s; want 422", resp.StatusCode, body)
	}

	resp = e.do(t, http.MethodGet, "/v1/status?unit=haproxy@second.service", nil, nil)
	want, _ := second.hasher.RunningSHA256(t.Context())
	if tag := resp.Header.Get("ETag"); tag != `"`+want+`"` {
		t.Errorf("second unit's ETag = %s, want its own config's", tag)
	}
	readAll(t, resp)

	fams := metricstest.Parse(t, []byte(readAll(t, e.do(t, http.MethodGet, "/metrics", nil, nil))))
	for unit, want := range map[string]float64{"haproxy.service": 0, "haproxy@second.service": 1} {
		got := -1.0
		for _, m := range fams["haguard_reloads_total"].GetMetric() {
			var u, r string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "unit":
					u = l.GetValue()
				case "result":
					r = l.GetValue()
				}
			}
			if u == unit && r == ResultOK {
				got = m.GetCounter().GetValue()
			}
		}
		if got != want {
			t.Errorf(`haguard_reloads_total{unit=%q,result="ok"} = %v, want %v`, unit, got, want)
		}
	}
}

// TestOneUnitNeedsNoQuery: with one unit, ?unit= may be left out, and
// naming it works too.
func TestOneUnitNeedsNoQuery(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Unit = "haproxy.service" })
	for _, path := range []string{"/v1/status", "/v1/status?unit=haproxy.service"} {
		resp := e.do(t, http.MethodGet, path, nil, nil)
		if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, resp.StatusCode, body)
		}
	}
	resp := e.do(t, http.MethodPost, "/v1/reloads", nil, nil)
	readAll(t, resp)
	if loc := resp.Header.Get("Location"); strings.Contains(loc, "unit=") {
		t.Errorf("Location %q names the only unit", loc)
	}
}

// TestUnitsRefuseDuplicates: two backends of one name are a wiring error.
func TestUnitsRefuseDuplicates(t *testing.T) {
	h := &fakeHasher{}
	b := UnitBackend{Unit: "a.service", Checker: fakeChecker{}, Reloader: &fakeReloader{}, Hasher: h,
		Ghosts: &fakeGhosts{}, Prober: fakeProber{}, Status: &fakeStatus{}}
	o := Options{Token: []byte(testToken), UnitBackend: b, More: []UnitBackend{b}}
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("New with a unit twice = %v", err)
	}
}
