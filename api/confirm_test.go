package api

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConfirmWithinAndConfirm: ?confirm_within reaches the Reloader; the
// provisional reload is confirmed once (200), then 409 not_pending; a bad
// duration is 422.
func TestConfirmWithinAndConfirm(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.do(t, "POST", "/v1/reloads?confirm_within=forever", strings.NewReader("global\n"), nil)
	wantError(t, resp, http.StatusUnprocessableEntity, "validation_failed")
	resp = e.do(t, "POST", "/v1/reloads?confirm_within=90h", strings.NewReader("global\n"), nil)
	wantError(t, resp, http.StatusUnprocessableEntity, "validation_failed")

	var j JobView
	decode(t, e.do(t, "POST", "/v1/reloads?confirm_within=5m", strings.NewReader("global\n"), nil), http.StatusAccepted, &j)
	waitDone(t, e, j.ID)
	e.rel.mu.Lock()
	got := e.rel.calls[0].ConfirmWithin
	e.rel.mu.Unlock()
	if got != 5*time.Minute {
		t.Fatalf("ConfirmWithin %v, want 5m", got)
	}
	var c confirmBody
	decode(t, e.do(t, "POST", "/v1/reloads/"+j.ID+"/confirm", nil, nil), http.StatusOK, &c)
	if c.ID != j.ID || c.Confirmation != "confirmed" || c.Entry == nil {
		t.Fatalf("confirm: %+v", c)
	}
	resp = e.do(t, "POST", "/v1/reloads/"+j.ID+"/confirm", nil, nil)
	wantError(t, resp, http.StatusConflict, "not_pending")
	resp = e.do(t, "POST", "/v1/reloads/..%2f/confirm", nil, nil)
	if b := readAll(t, resp); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("bad id: %d %s", resp.StatusCode, b)
	}
}
