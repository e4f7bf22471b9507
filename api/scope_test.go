package api

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const readToken = "read-only-token-for-prometheus-0123"

// TestScopes: a read token sees (status, history, one reload, ghosts,
// metrics) and gets 403 on every route that runs something; the write
// token does everything. No request of the read token reaches the
// Reloader.
func TestScopes(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Tokens = []Token{{Scope: ScopeRead, Secret: []byte(readToken)}} })
	rd := map[string]string{"Authorization": "Bearer " + readToken}
	for _, r := range [][2]string{{"GET", "/v1/status"}, {"GET", "/v1/reloads"}, {"GET", "/v1/ghosts"}, {"GET", "/metrics"}, {"GET", "/v1/reloads/old-1"}} {
		resp := e.do(t, r[0], r[1], nil, rd)
		if b := readAll(t, resp); resp.StatusCode != http.StatusOK {
			t.Errorf("read token, %s %s: %d %s", r[0], r[1], resp.StatusCode, b)
		}
	}
	for _, r := range [][2]string{{"POST", "/v1/check"}, {"POST", "/v1/reloads"}, {"POST", "/v1/rollback"}, {"POST", "/v1/probes"}, {"POST", "/v1/reloads/x/confirm"},
		{"PATCH", "/v1/backends/be/servers/s1"}, {"POST", "/v1/backends/be/servers/s1/drain"},
		{"PUT", "/v1/maps/%2Fetc%2Fhosts.map/entries/k"}, {"DELETE", "/v1/maps/%2Fetc%2Fhosts.map/entries/k"}} {
		resp := e.do(t, r[0], r[1], strings.NewReader("global\n"), rd)
		wantError(t, resp, http.StatusForbidden, "forbidden")
	}
	if calls, _ := e.rel.stats(); calls != 0 {
		t.Fatalf("a read token ran %d transactions", calls)
	}
	// The write token still does everything.
	j := waitDone(t, e, postReload(t, e, "global\n", nil).ID)
	if j.Result != ResultOK {
		t.Fatalf("write token: %+v", j)
	}
}

// TestOptionsNeedsAuth: OPTIONS answers only a token holder, but on the
// open routes.
func TestOptionsNeedsAuth(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range []string{"/v1/status", "/v1/reloads", "/v1/reloads/x", "/metrics", "/v1/check"} {
		resp := e.do(t, "OPTIONS", p, nil, map[string]string{"Authorization": ""})
		wantError(t, resp, http.StatusUnauthorized, "unauthorized")
		resp = e.do(t, "OPTIONS", p, nil, nil)
		if b := readAll(t, resp); resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("OPTIONS %s with the token: %d %s", p, resp.StatusCode, b)
		}
	}
	resp := e.do(t, "OPTIONS", "/v1/healthz", nil, map[string]string{"Authorization": ""})
	if b := readAll(t, resp); resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("OPTIONS /v1/healthz: %d %s", resp.StatusCode, b)
	}
}

// TestUnauthorizedIsLoggedAtWarnRateLimited: the first refused request is
// a warning; a burst that follows within the period adds no line; the
// next line, after the period, counts the ones left out.
func TestUnauthorizedIsLoggedAtWarnRateLimited(t *testing.T) {
	var buf syncBuffer
	e := newEnv(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	for range 50 {
		readAll(t, e.do(t, "GET", "/v1/status", nil, map[string]string{"Authorization": "Bearer guess-guess-guess-guess"}))
	}
	if n := strings.Count(buf.String(), "request refused"); n != 1 || !strings.Contains(buf.String(), "level=WARN") {
		t.Fatalf("50 refused requests logged %d lines:\n%s", n, buf.String())
	}
	e.srv.denied.mu.Lock()
	e.srv.denied.last = time.Now().Add(-denialLogEvery) // the period has passed
	e.srv.denied.mu.Unlock()
	readAll(t, e.do(t, "POST", "/v1/reloads", nil, map[string]string{"Authorization": ""}))
	if !strings.Contains(buf.String(), "refused_since_last_line=49") {
		t.Fatalf("the second line does not count the 49 left out:\n%s", buf.String())
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
