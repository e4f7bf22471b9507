package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testToken = "s3cret-token-for-tests-0123456789"

// fakeReloader records every call and the highest number of transactions
// that ever ran at once. gate, when set, blocks each transaction until a
// value arrives.
type fakeReloader struct {
	mu      sync.Mutex
	running int
	maxRun  int
	calls   []ReloadRequest
	rolls   []RollbackRequest
	started chan string
	gate    chan struct{}
	hasher  *fakeHasher
	// confirmed are the provisional reloads Confirm made final.
	confirmed map[string]bool
}

func (f *fakeReloader) enter(id string) {
	f.mu.Lock()
	f.running++
	f.maxRun = max(f.maxRun, f.running)
	f.mu.Unlock()
	if f.started != nil {
		f.started <- id
	}
	if f.gate != nil {
		<-f.gate
	} else {
		time.Sleep(time.Millisecond) // widen the window a second transaction would need
	}
}

func (f *fakeReloader) leave() {
	f.mu.Lock()
	f.running--
	f.mu.Unlock()
}

func (f *fakeReloader) Reload(_ context.Context, req ReloadRequest) (Outcome, error) {
	f.enter(req.ID)
	defer f.leave()
	if err := f.stale(req.IfMatch); err != nil {
		return Outcome{ID: req.ID, Result: ResultRefused}, err
	}
	f.mu.Lock()
	f.calls = append(f.calls, req)
	f.mu.Unlock()
	if string(req.Candidate) == "panic" {
		panic("boom")
	}
	if req.Candidate != nil && f.hasher != nil {
		f.hasher.set(fmt.Sprintf("%064x", len(f.calls)))
	}
	return Outcome{ID: req.ID, Result: ResultOK, Duration: 250 * time.Millisecond,
		Counts: map[string]int{"warning": 2}, Probes: ProbeTotals{OK: 40},
		Body: map[string]any{"id": req.ID, "ok": true}}, nil
}

func (f *fakeReloader) Rollback(_ context.Context, req RollbackRequest) (Outcome, error) {
	f.enter(req.ID)
	defer f.leave()
	if err := f.stale(req.IfMatch); err != nil {
		return Outcome{ID: req.ID, Result: ResultRefused}, err
	}
	f.mu.Lock()
	f.rolls = append(f.rolls, req)
	f.mu.Unlock()
	return Outcome{ID: req.ID, Result: ResultOK, Body: map[string]any{"id": req.ID}}, nil
}

func (f *fakeReloader) History(context.Context, int) (any, error) {
	return []map[string]any{{"id": "old-1", "ok": true}}, nil
}

func (f *fakeReloader) Get(_ context.Context, id string) (Outcome, error) {
	if id == "old-1" {
		return Outcome{ID: id, Result: ResultOK, Body: map[string]any{"id": "old-1", "ok": true}}, nil
	}
	return Outcome{}, fmt.Errorf("history: %w", ErrNotFound)
}

// stale is the real Reloader's If-Match check under its lock.
func (f *fakeReloader) stale(want string) error {
	if want == "" || f.hasher == nil {
		return nil
	}
	if have, _ := f.hasher.RunningSHA256(context.Background()); have != want {
		return fmt.Errorf("reload refused: %w", &PreconditionError{Want: want, Have: have})
	}
	return nil
}

func (f *fakeReloader) Confirm(_ context.Context, id string) (Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.ID == id && c.ConfirmWithin > 0 && !f.confirmed[id] {
			if f.confirmed == nil {
				f.confirmed = map[string]bool{}
			}
			f.confirmed[id] = true
			return Outcome{ID: id, Result: ResultOK, Body: map[string]any{"id": id, "confirmation": map[string]any{"result": "confirmed"}}}, nil
		}
	}
	return Outcome{}, fmt.Errorf("reload %s: %w", id, ErrNotPending)
}

func (f *fakeReloader) stats() (calls, maxRun int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls) + len(f.rolls), f.maxRun
}

type fakeHasher struct {
	mu  sync.Mutex
	sha string
}

func (h *fakeHasher) set(s string) { h.mu.Lock(); h.sha = s; h.mu.Unlock() }
func (h *fakeHasher) RunningSHA256(context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sha, nil
}

type fakeChecker struct{}

func (fakeChecker) Check(_ context.Context, cfg []byte) (CheckReport, error) {
	if strings.Contains(string(cfg), "timeout client 5") {
		return CheckReport{Valid: true, Findings: []map[string]any{{"rule": "HA001", "severity": "error"}},
			Counts: map[string]int{"error": 1}}, nil
	}
	if strings.Contains(string(cfg), "bogus") {
		return CheckReport{Valid: false, Output: "[ALERT] unknown keyword 'bogus'", Findings: []any{}, Counts: map[string]int{}}, nil
	}
	return CheckReport{Valid: true, Findings: []any{}, Counts: map[string]int{}}, nil
}

type fakeGhosts struct {
	mu     sync.Mutex
	last   *SweepReport
	sweeps int
}

func (g *fakeGhosts) Last() (SweepReport, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		return SweepReport{}, false
	}
	return *g.last, true
}

func (g *fakeGhosts) SweepNow(context.Context) (SweepReport, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweeps++
	r := SweepReport{At: time.Unix(1700000000, 0).UTC(), Counts: map[string]int{"current": 2, "ghost": 1},
		Processes: []map[string]any{{"pid": 42, "class": "ghost"}}}
	g.last = &r
	return r, nil
}

type fakeProber struct{}

func (fakeProber) Probe(_ context.Context, req ProbeRequest) (ProbeReport, error) {
	if len(req.Targets) == 1 && req.Targets[0] == "127.0.0.1:1" {
		return ProbeReport{}, errors.New("probe exploded")
	}
	return ProbeReport{Report: map[string]any{"ok": false}, Totals: ProbeTotals{OK: 3, Failed: 1}}, nil
}

type fakeStatus struct {
	calls atomic.Int64
	// gate, when set, holds each call until it is closed.
	gate chan struct{}
}

func (f *fakeStatus) Status(context.Context) (UnitStatus, error) {
	f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	return UnitStatus{Unit: "haproxy.service", ActiveState: "active", MainPID: 7, Generation: 3}, nil
}

// env is a real server on a real loopback listener, with fakes behind it.
type env struct {
	url    string
	srv    *Server
	rel    *fakeReloader
	hash   *fakeHasher
	ghosts *fakeGhosts
	client *http.Client
	stop   func() error
}

func newEnv(t *testing.T, mod func(*Options)) *env { return newEnvMod(t, mod) }

// newEnvTB is newEnv for benchmarks.
func newEnvTB(tb testing.TB) *env { return newEnvMod(tb, nil) }

func newEnvMod(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	h := &fakeHasher{sha: strings.Repeat("a", 64)}
	rel := &fakeReloader{hasher: h}
	g := &fakeGhosts{}
	opts := Options{Token: []byte(testToken), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		UnitBackend: UnitBackend{Checker: fakeChecker{}, Reloader: rel, Hasher: h, Ghosts: g, Prober: fakeProber{}, Status: &fakeStatus{}},
		Version:     "test"}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{url: "http://" + ln.Addr().String(), srv: srv, rel: rel, hash: h, ghosts: g,
		client: &http.Client{Timeout: 30 * time.Second}}
	e.stop = startServe(t, srv, ln)
	return e
}

// startServe runs Serve and returns a function that stops it and returns
// Serve's error; cleanup stops it too.
func startServe(t testing.TB, srv *Server, ln net.Listener) func() error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func (e *env) do(t *testing.T, method, path string, body io.Reader, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
