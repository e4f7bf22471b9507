package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestIfMatchStrongComparison: If-Match uses the strong comparison (RFC
// 9110 13.1.1), so a weak tag never matches, even with the right hash: a
// client that sent one did not get it from haguard and has no guarantee.
// A list of tags matches when one of them does.
func TestIfMatchStrongComparison(t *testing.T) {
	e := newEnv(t, nil)
	running := strings.Repeat("a", 64)
	stale := strings.Repeat("b", 64)

	resp := e.do(t, "POST", "/v1/reloads", strings.NewReader("global\n"), map[string]string{"If-Match": `W/"` + running + `"`})
	wantError(t, resp, http.StatusPreconditionFailed, "precondition_failed")
	if calls, _ := e.rel.stats(); calls != 0 {
		t.Fatalf("a weak If-Match ran %d transactions", calls)
	}

	resp = e.do(t, "POST", "/v1/reloads", strings.NewReader("global\n"), map[string]string{"If-Match": `"` + stale + `", "` + running + `"`})
	var j JobView
	decode(t, resp, http.StatusAccepted, &j)
	if j = waitDone(t, e, j.ID); j.Result != ResultOK {
		t.Fatalf("a list with the running hash: %+v", j)
	}

	for _, h := range []string{`"` + stale + `", W/"` + strings.Repeat("c", 64) + `"`, `"` + stale + `", "../x"`} {
		resp = e.do(t, "POST", "/v1/reloads", strings.NewReader("global\n"), map[string]string{"If-Match": h})
		if resp.StatusCode != http.StatusPreconditionFailed && resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("If-Match %s: status %d", h, resp.StatusCode)
		}
		readAll(t, resp)
	}
}
