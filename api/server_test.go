package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type errorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func wantError(t *testing.T, resp *http.Response, status int, code string) errorJSON {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var e errorJSON
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body is not JSON: %q", body)
	}
	if e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("error body %s, want code %q and a message", body, code)
	}
	return e
}

func TestUnauthorized(t *testing.T) {
	e := newEnv(t, nil)
	routes := [][2]string{
		{"GET", "/v1/status"}, {"POST", "/v1/check"}, {"POST", "/v1/reloads"}, {"GET", "/v1/reloads"},
		{"GET", "/v1/reloads/x"}, {"POST", "/v1/rollback"}, {"GET", "/v1/ghosts"}, {"POST", "/v1/probes"},
		{"GET", "/metrics"}, {"POST", "/v1/reloads/x/confirm"},
	}
	for _, r := range routes {
		for name, auth := range map[string]string{
			"none": "", "wrong": "Bearer " + testToken + "x", "prefix": "Bearer " + testToken[:10],
			"basic": "Basic " + testToken,
		} {
			resp := e.do(t, r[0], r[1], nil, map[string]string{"Authorization": auth})
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s (%s): no WWW-Authenticate", r[0], r[1], name)
			}
			wantError(t, resp, http.StatusUnauthorized, "unauthorized")
		}
	}
	if _, maxRun := e.rel.stats(); maxRun != 0 {
		t.Fatal("an unauthenticated request reached the reloader")
	}
	for _, open := range []string{"/v1/healthz", "/v1/openapi.json"} {
		resp := e.do(t, "GET", open, nil, map[string]string{"Authorization": ""})
		if b := readAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("%s without token: %d %s", open, resp.StatusCode, b)
		}
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", testToken+"\n", 0o600)
	toks, err := LoadTokens(good)
	if err != nil || len(toks) != 1 || string(toks[0].Secret) != testToken || toks[0].Scope != ScopeWrite {
		t.Fatalf("LoadTokens(0600) = %+v, %v", toks, err)
	}
	scoped := write("scoped", "# prometheus\nread  "+testToken+"-read\n\nwrite "+testToken+"\n", 0o600)
	toks, err = LoadTokens(scoped)
	if err != nil || len(toks) != 2 || toks[0].Scope != ScopeRead || string(toks[0].Secret) != testToken+"-read" ||
		toks[1].Scope != ScopeWrite || string(toks[1].Secret) != testToken {
		t.Fatalf("LoadTokens(scoped) = %+v, %v", toks, err)
	}
	for name, c := range map[string]struct {
		data string
		mode os.FileMode
		want string
	}{
		"0644":        {testToken, 0o644, "mode 0644 lets group or others read or write it; run: chmod 0600"},
		"0640":        {testToken, 0o640, "mode 0640"},
		"0602":        {testToken, 0o602, "mode 0602"},
		"short":       {"abc\n", 0o600, "shorter than 16 bytes"},
		"whitespace":  {"read abcdefgh ijklmnopqrs", 0o600, "whitespace"},
		"scope":       {"admin " + testToken, 0o600, `line 1: scope "admin": want read or write`},
		"twice":       {"read " + testToken + "\nwrite " + testToken, 0o600, "line 2: the same token is given twice"},
		"comment":     {"# nothing here\n", 0o600, "holds no token"},
		"empty":       {"", 0o600, "holds no token"},
		"0400 is ok?": {testToken, 0o400, ""},
	} {
		p := write(strings.ReplaceAll(name, " ", "_"), c.data, c.mode)
		_, err := LoadTokens(p)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		var tfe *TokenFileError
		if !errors.As(err, &tfe) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err %v, want a *TokenFileError naming %s and %q", name, err, p, c.want)
		}
	}
	if _, err := LoadTokens(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadTokens(dir); err == nil {
		t.Error("a directory was accepted as a token file")
	}
	if _, err := New(Options{}); !errors.Is(err, errNoToken) {
		t.Errorf("New without token: %v", err)
	}
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxBodyBytes = 1 << 20 })
	big := bytes.Repeat([]byte("# padding line of a huge config\n"), (10<<20)/32)
	for _, path := range []string{"/v1/reloads", "/v1/check", "/v1/probes", "/v1/rollback"} {
		// With Content-Length: refused before reading.
		resp := e.do(t, "POST", path, bytes.NewReader(big), nil)
		wantError(t, resp, http.StatusRequestEntityTooLarge, "body_too_large")
		// Chunked, no Content-Length: refused while reading.
		resp = e.do(t, "POST", path, io.MultiReader(bytes.NewReader(big)), nil)
		wantError(t, resp, http.StatusRequestEntityTooLarge, "body_too_large")
	}
	if calls, _ := e.rel.stats(); calls != 0 {
		t.Fatalf("%d transactions ran for refused bodies", calls)
	}
	// Just under the limit is fine.
	resp := e.do(t, "POST", "/v1/check", bytes.NewReader(big[:1<<20]), nil)
	if b := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("1 MiB check: %d %s", resp.StatusCode, b)
	}
}

func TestIfMatch(t *testing.T) {
	e := newEnv(t, nil)
	stale := strings.Repeat("b", 64)
	resp := e.do(t, "POST", "/v1/reloads", strings.NewReader("global\n"), map[string]string{"If-Match": `"` + stale + `"`})
	er := wantError(t, resp, http.StatusPreconditionFailed, "precondition_failed")
	if !strings.Contains(er.Error.Message, stale) || !strings.Contains(er.Error.Message, strings.Repeat("a", 64)) {
		t.Errorf("412 message does not name both hashes: %s", er.Error.Message)
	}
	resp = e.do(t, "POST", "/v1/rollback", nil, map[string]string{"If-Match": stale})
	wantError(t, resp, http.StatusPreconditionFailed, "precondition_failed")
	resp = e.do(t, "POST", "/v1/reloads", nil, map[string]string{"If-Match": "../../etc/passwd"})
	wantError(t, resp, http.StatusUnprocessableEntity, "validation_failed")
	if calls, _ := e.rel.stats(); calls != 0 {
		t.Fatalf("%d transactions ran after refusals", calls)
	}

	// The ETag of /v1/status is what If-Match wants.
	resp = e.do(t, "GET", "/v1/status", nil, nil)
	etag := resp.Header.Get("ETag")
	readAll(t, resp)
	resp = e.do(t, "POST", "/v1/reloads", strings.NewReader("global\n"), map[string]string{"If-Match": etag})
	var j JobView
	decode(t, resp, http.StatusAccepted, &j)
	j = waitDone(t, e, j.ID)
	if j.Result != ResultOK || j.Error != "" {
		t.Fatalf("matching If-Match: %+v", j)
	}
	// The reload changed the running config: the old ETag is stale now.
	resp = e.do(t, "POST", "/v1/reloads", strings.NewReader("global\n"), map[string]string{"If-Match": etag})
	wantError(t, resp, http.StatusPreconditionFailed, "precondition_failed")
}

// TestIfMatchRecheckedBeforeRun: a job that waited while another changed
// the config is refused when its turn comes. The queue hands If-Match to
// the Reloader, which compares it under its lock (the fake does as
// reload.Options.IfMatch does).
func TestIfMatchRecheckedBeforeRun(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan string, 4)
	e := newEnv(t, nil)
	e.rel.gate, e.rel.started = gate, started
	first := postReload(t, e, "cand-1", nil)
	<-started
	second := postReload(t, e, "cand-2", map[string]string{"If-Match": strings.Repeat("a", 64)})
	close(gate)
	if j := waitDone(t, e, first.ID); j.Result != ResultOK {
		t.Fatalf("first: %+v", j)
	}
	j := waitDone(t, e, second.ID)
	if j.Result != ResultRefused || !strings.Contains(j.Error, "stale") {
		t.Fatalf("second should be refused as stale: %+v", j)
	}
	if calls, _ := e.rel.stats(); calls != 1 {
		t.Fatalf("reloader ran %d times, want 1", calls)
	}
	m := readAll(t, e.do(t, "GET", "/metrics", nil, nil))
	for _, want := range []string{`haguard_reloads_total{result="ok"} 1`, `haguard_reloads_total{result="refused"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestWaitFalseConflict(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan string, 4)
	e := newEnv(t, nil)
	e.rel.gate, e.rel.started = gate, started
	first := postReload(t, e, "", nil)
	<-started
	resp := e.do(t, "POST", "/v1/reloads?wait=false", nil, nil)
	er := wantError(t, resp, http.StatusConflict, "reload_running")
	if !strings.Contains(er.Error.Message, first.ID) {
		t.Errorf("409 does not name the running id %s: %s", first.ID, er.Error.Message)
	}
	resp = e.do(t, "POST", "/v1/rollback?wait=false", nil, nil)
	wantError(t, resp, http.StatusConflict, "reload_running")
	resp = e.do(t, "POST", "/v1/reloads?wait=maybe", nil, nil)
	wantError(t, resp, http.StatusUnprocessableEntity, "validation_failed")
	// wait=true (the default) queues behind it.
	second := postReload(t, e, "", nil)
	if second.ID == first.ID || second.State != stateQueued {
		t.Fatalf("second: %+v", second)
	}
	close(gate)
	waitDone(t, e, second.ID)
	// Idle again: wait=false is accepted.
	third := postReload(t, e, "", nil)
	waitDone(t, e, third.ID)
	resp = e.do(t, "POST", "/v1/reloads?wait=false", nil, nil)
	if b := readAll(t, resp); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("idle wait=false: %d %s", resp.StatusCode, b)
	}
}

// TestConcurrentReloads: 100 concurrent POSTs are all answered 202 with
// an id that resolves to a finished transaction, and the reloader never
// runs two at once. Identical requests coalesce; distinct ones queue.
func TestConcurrentReloads(t *testing.T) {
	for _, distinct := range []bool{false, true} {
		name := map[bool]string{false: "identical", true: "distinct"}[distinct]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.QueueDepth = 128 })
			const n = 100
			ids := make([]string, n)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					body := ""
					if distinct {
						body = "candidate " + string(rune('A'+i%26)) + strings.Repeat("x", i)
					}
					req, _ := http.NewRequest("POST", e.url+"/v1/reloads", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+testToken)
					resp, err := e.client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					defer resp.Body.Close()
					var j JobView
					if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") == "" {
						errs <- errors.New(resp.Status)
						return
					}
					if err := json.NewDecoder(resp.Body).Decode(&j); err != nil || j.ID == "" {
						errs <- errors.New("no id")
						return
					}
					if resp.Header.Get("Location") != "/v1/reloads/"+j.ID {
						errs <- errors.New("Location " + resp.Header.Get("Location"))
						return
					}
					ids[i] = j.ID
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			unique := map[string]bool{}
			for _, id := range ids {
				unique[id] = true
				if j := waitDone(t, e, id); j.Result != ResultOK {
					t.Fatalf("%s: %+v", id, j)
				}
			}
			calls, maxRun := e.rel.stats()
			if maxRun != 1 {
				t.Fatalf("max concurrent transactions = %d, want 1", maxRun)
			}
			if calls != len(unique) {
				t.Fatalf("%d transactions for %d distinct ids", calls, len(unique))
			}
			if distinct && calls != n {
				t.Fatalf("distinct candidates: %d transactions, want %d", calls, n)
			}
			if !distinct && calls >= n {
				t.Fatalf("identical requests did not coalesce: %d transactions", calls)
			}
			t.Logf("%s: %d requests, %d transactions, max concurrency %d", name, n, calls, maxRun)
		})
	}
}

// TestPanicFailsTheJob: a panicking transaction fails its job; the queue
// and the server keep working.
func TestPanicFailsTheJob(t *testing.T) {
	e := newEnv(t, nil)
	j := waitDone(t, e, postReload(t, e, "panic", nil).ID)
	if j.Result != ResultFailed || !strings.Contains(j.Error, "panicked: boom") {
		t.Fatalf("panicking job: %+v", j)
	}
	if j := waitDone(t, e, postReload(t, e, "fine", nil).ID); j.Result != ResultOK {
		t.Fatalf("after a panic: %+v", j)
	}
}

func TestQueueFull(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan string, 4)
	e := newEnv(t, func(o *Options) { o.QueueDepth = 2 })
	e.rel.gate, e.rel.started = gate, started
	postReload(t, e, "a", nil)
	<-started
	postReload(t, e, "b", nil)
	postReload(t, e, "c", nil)
	resp := e.do(t, "POST", "/v1/reloads", strings.NewReader("d"), nil)
	wantError(t, resp, http.StatusServiceUnavailable, "queue_full")
	// An identical waiting request still coalesces.
	if j := postReload(t, e, "c", nil); j.Coalesced != 1 {
		t.Fatalf("coalesce into a full queue: %+v", j)
	}
	close(gate)
}

func TestGracefulShutdown(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan string, 4)
	e := newEnv(t, nil)
	e.rel.gate, e.rel.started = gate, started
	running := postReload(t, e, "a", nil)
	<-started
	waiting := postReload(t, e, "b", nil)
	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	// Serve must not return while the transaction runs.
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) while a reload was running", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if v, _ := e.srv.units[0].queue.get(running.ID); v.State != stateDone || v.Result != ResultOK {
		t.Fatalf("running job after shutdown: %+v", v)
	}
	if v, _ := e.srv.units[0].queue.get(waiting.ID); v.State != stateCancelled {
		t.Fatalf("waiting job after shutdown: %+v", v)
	}
	if calls, _ := e.rel.stats(); calls != 1 {
		t.Fatalf("%d transactions ran, want 1", calls)
	}
	if _, _, err := e.srv.units[0].queue.submit(submission{kind: kindReload, wait: true}); !errors.Is(err, errShuttingDown) {
		t.Fatalf("submit after shutdown: %v", err)
	}
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "haguard.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix:" + sock); err == nil || !strings.Contains(err.Error(), "non-socket") {
		t.Fatalf("a regular file in the way: %v", err)
	}
	os.Remove(sock)
	// A stale socket is replaced.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	e := newEnv(t, nil)
	startServe(t, e.srv, ln)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, _ := http.NewRequest("GET", "http://unix/v1/status", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, resp, http.StatusUnauthorized, "unauthorized")
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(b, `"active_state":"active"`) {
		t.Fatalf("status over unix socket: %d %s", resp.StatusCode, b)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:9180", ":9180", "192.0.2.1:9180", "example.com:80", "unix:relative.sock", "nonsense"} {
		if ln, err := Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		ln, err := Listen(addr)
		if err != nil {
			if addr == "[::1]:0" { // no IPv6 loopback in some sandboxes
				continue
			}
			t.Errorf("Listen(%q): %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// postReload POSTs a reload and decodes the 202.
func postReload(t *testing.T, e *env, body string, hdr map[string]string) JobView {
	t.Helper()
	resp := e.do(t, "POST", "/v1/reloads", strings.NewReader(body), hdr)
	var j JobView
	decode(t, resp, http.StatusAccepted, &j)
	return j
}

func decode(t *testing.T, resp *http.Response, status int, v any) {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}

// waitDone polls GET /v1/reloads/{id} until the job is finished (bounded).
func waitDone(t *testing.T, e *env, id string) JobView {
	t.Helper()
	return waitAt(t, e, "/v1/reloads/"+id)
}

// waitAt polls a job's location until it is finished (bounded).
func waitAt(t *testing.T, e *env, loc string) JobView {
	t.Helper()
	for range 3000 {
		resp := e.do(t, "GET", loc, nil, nil)
		var j JobView
		decode(t, resp, http.StatusOK, &j)
		if j.State == stateDone || j.State == stateCancelled {
			return j
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", loc)
	return JobView{}
}

// With MergeReloads (reload.min_interval set), reloads with distinct
// candidates and no If-Match that arrive while one runs join the waiting
// one, which runs the newest candidate; every answer names the job it
// joined. One with If-Match, or a rollback, queues on its own.
func TestMergeReloadsWhileOneRuns(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan string, 8)
	e := newEnv(t, func(o *Options) { o.MergeReloads = func() bool { return true } })
	e.rel.gate, e.rel.started = gate, started
	first := postReload(t, e, "a", nil)
	<-started
	var joined []JobView
	for _, c := range []string{"b", "c", "d", "e"} {
		joined = append(joined, postReload(t, e, c, nil))
	}
	waiting := joined[0]
	for _, j := range joined[1:] {
		if j.ID != waiting.ID || !j.Joined {
			t.Fatalf("request joined %+v, want the waiting reload %s", j, waiting.ID)
		}
	}
	if waiting.ID == first.ID || waiting.Joined {
		t.Fatalf("the first waiting request %+v", waiting)
	}
	close(gate)
	if j := waitDone(t, e, waiting.ID); j.Result != ResultOK || j.Merged != 3 {
		t.Fatalf("merged reload: %+v", j)
	}
	e.rel.mu.Lock()
	defer e.rel.mu.Unlock()
	if len(e.rel.calls) != 2 || string(e.rel.calls[1].Candidate) != "e" {
		t.Fatalf("transactions %d, second candidate %q; want 2, the newest (e)", len(e.rel.calls), e.rel.calls[len(e.rel.calls)-1].Candidate)
	}
}

// A request with If-Match never joins another candidate's waiting job
// (its precondition is about what runs), nor does a rollback; without
// MergeReloads distinct candidates queue one job each.
func TestMergeReloadsKeepsIfMatchAndRollbacksApart(t *testing.T) {
	for _, merge := range []bool{true, false} {
		t.Run(fmt.Sprint("merge ", merge), func(t *testing.T) {
			gate := make(chan struct{})
			started := make(chan string, 8)
			e := newEnv(t, func(o *Options) { o.MergeReloads = func() bool { return merge } })
			e.rel.gate, e.rel.started = gate, started
			postReload(t, e, "a", nil)
			<-started
			b := postReload(t, e, "b", nil)
			c := postReload(t, e, "c", map[string]string{"If-Match": strings.Repeat("a", 64)})
			d := postReload(t, e, "d", nil)
			f := postReload(t, e, "f", nil)
			if c.ID == b.ID || c.Joined {
				t.Errorf("a request with If-Match joined %+v", c)
			}
			// d may not join b past c (the order of the queue holds),
			// nor the If-Match job c.
			if d.ID == b.ID || d.ID == c.ID || d.Joined {
				t.Errorf("d joined %+v (b %s, c %s)", d, b.ID, c.ID)
			}
			if merge != (f.ID == d.ID && f.Joined) {
				t.Errorf("merge %v: f %+v, d %s", merge, f, d.ID)
			}
			close(gate)
		})
	}
}
