package api

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

type gateChecker struct {
	started chan struct{}
	gate    chan struct{}
}

func (g gateChecker) Check(context.Context, []byte) (CheckReport, error) {
	g.started <- struct{}{}
	<-g.gate
	return CheckReport{Valid: true, Findings: []any{}, Counts: map[string]int{}}, nil
}

// TestCheckConcurrencyCap: two checks run at once; a third gets 429 with
// Retry-After, and runs once a slot is free.
func TestCheckConcurrencyCap(t *testing.T) {
	g := gateChecker{started: make(chan struct{}, 4), gate: make(chan struct{})}
	e := newEnv(t, func(o *Options) { o.Checker = g })
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { readAll(t, e.do(t, "POST", "/v1/check", strings.NewReader("global\n"), nil)) })
	}
	<-g.started
	<-g.started
	resp := e.do(t, "POST", "/v1/check", strings.NewReader("global\n"), nil)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	wantError(t, resp, http.StatusTooManyRequests, "too_many_requests")
	close(g.gate)
	wg.Wait()
	resp = e.do(t, "POST", "/v1/check", strings.NewReader("global\n"), nil)
	if b := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("check after the others ended: %d %s", resp.StatusCode, b)
	}
}

// TestOversizedLine: a line over MaxLineBytes is 422 naming it, for a
// check and for a reload (text and a set), and nothing runs.
func TestOversizedLine(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxBodyBytes = 4 << 20 })
	long := "global\n    log " + strings.Repeat("x", MaxLineBytes+1) + "\n"
	resp := e.do(t, "POST", "/v1/check", strings.NewReader(long), nil)
	if er := wantError(t, resp, http.StatusUnprocessableEntity, "validation_failed"); !strings.Contains(er.Error.Message, "line 2") {
		t.Errorf("message %q does not name line 2", er.Error.Message)
	}
	resp = e.do(t, "POST", "/v1/reloads", strings.NewReader(long), nil)
	wantError(t, resp, http.StatusUnprocessableEntity, "validation_failed")
	if calls, _ := e.rel.stats(); calls != 0 {
		t.Fatalf("an oversized line ran %d transactions", calls)
	}
	// The longest line the config reader reads is fine; one byte more is not.
	ok := "global\n" + strings.Repeat("#", MaxLineBytes-1) + "\n"
	resp = e.do(t, "POST", "/v1/check", strings.NewReader(ok), nil)
	if b := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("a line of %d bytes: %d %.200s", MaxLineBytes-1, resp.StatusCode, b)
	}
	resp = e.do(t, "POST", "/v1/check", strings.NewReader("global\n"+strings.Repeat("#", MaxLineBytes)+"\n"), nil)
	wantError(t, resp, http.StatusUnprocessableEntity, "validation_failed")
}

type recordProber struct {
	mu   sync.Mutex
	reqs []ProbeRequest
}

func (p *recordProber) Probe(_ context.Context, req ProbeRequest) (ProbeReport, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = append(p.reqs, req)
	return ProbeReport{}, nil
}

// TestProbeBounds: targets named twice are probed once, and count ×
// targets is capped.
func TestProbeBounds(t *testing.T) {
	p := &recordProber{}
	e := newEnv(t, func(o *Options) { o.Prober = p })
	resp := e.do(t, "POST", "/v1/probes", strings.NewReader(`{"targets":["127.0.0.1:80","127.0.0.1:80","127.0.0.1:81"],"count":5}`), nil)
	if b := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("probes: %d %s", resp.StatusCode, b)
	}
	if len(p.reqs) != 1 || strings.Join(p.reqs[0].Targets, ",") != "127.0.0.1:80,127.0.0.1:81" {
		t.Fatalf("prober got %+v, want the two distinct targets", p.reqs)
	}
	var many []string
	for i := range 64 {
		many = append(many, `"127.0.0.1:`+strconv.Itoa(1000+i)+`"`)
	}
	resp = e.do(t, "POST", "/v1/probes", strings.NewReader(`{"targets":[`+strings.Join(many, ",")+`],"count":1000}`), nil)
	if er := wantError(t, resp, http.StatusUnprocessableEntity, "validation_failed"); !strings.Contains(er.Error.Message, "64000 connections") {
		t.Errorf("message %q", er.Error.Message)
	}
	// The same target 64 times is one target.
	same := strings.Repeat(`"127.0.0.1:80",`, 63) + `"127.0.0.1:80"`
	resp = e.do(t, "POST", "/v1/probes", strings.NewReader(`{"targets":[`+same+`],"count":1000}`), nil)
	if b := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("one target named 64 times: %d %s", resp.StatusCode, b)
	}
}

// TestUnixSocketDirAndSymlink: a socket directory that group or others
// can write is refused; the chmod never follows a symlink put where the
// socket was.
func TestUnixSocketDirAndSymlink(t *testing.T) {
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix:" + filepath.Join(open, "haguard.sock")); err == nil || !strings.Contains(err.Error(), "group or others may write it") {
		t.Fatalf("a 0777 socket dir: %v", err)
	}
	grp := t.TempDir()
	if err := os.Chmod(grp, 0o770); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix:" + filepath.Join(grp, "haguard.sock")); err == nil {
		t.Fatal("a group-writable socket dir was accepted")
	}
	dir := t.TempDir()
	ln, err := Listen("unix:" + filepath.Join(dir, "haguard.sock"))
	if err != nil {
		t.Fatalf("a 0700 socket dir: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	ln.Close()

	// A symlink where the socket is: chmodSocket refuses, the target keeps its mode.
	target := filepath.Join(dir, "secret")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := chmodSocket(link, 0o666); err == nil {
		t.Fatal("chmodSocket followed a symlink")
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o600 {
		t.Fatalf("the symlink's target became %v", fi.Mode().Perm())
	}
	// On a real socket it works.
	sock := filepath.Join(dir, "real.sock")
	l2, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := chmodSocket(sock, 0o640); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(sock); fi.Mode().Perm() != 0o640 {
		t.Fatalf("socket mode %v, want 0640", fi.Mode().Perm())
	}
}
