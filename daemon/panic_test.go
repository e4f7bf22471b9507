package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/validate"
)

// fakeHost is the smallest host a reload commits on: a master whose
// counters move on each reload, a clean sweep, and a prober that panics
// the first time it is asked.
type fakeHost struct {
	mu       sync.Mutex
	gen      reload.Generation
	next     int
	panicked bool
}

func (f *fakeHost) Check(context.Context, reload.CheckRequest) (reload.CheckReport, error) {
	return reload.CheckReport{Valid: true}, nil
}

func (f *fakeHost) Reload(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen.Reloads++
	f.gen.Workers = []reload.Worker{{PID: f.next}}
	f.next++
	return nil
}

func (f *fakeHost) UnitState(context.Context, string) (reload.UnitState, error) {
	return reload.UnitState{ActiveState: "active", StatusText: "Ready."}, nil
}

func (f *fakeHost) ShowProc(context.Context) (reload.Generation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen, nil
}

func (f *fakeHost) Sweep(context.Context) (reload.SweepReport, error) {
	return reload.SweepReport{}, nil
}
func (f *fakeHost) Kill(context.Context, []reload.Process) error { return nil }

func (f *fakeHost) Health(context.Context) ([]reload.ServerHealth, error) { return nil, nil }

func (f *fakeHost) Learn(context.Context) (reload.ProbeBaseline, error) { return nil, nil }

func (f *fakeHost) Probe(context.Context, *validate.Config, reload.ProbeBaseline) (reload.ProbeReport, error) {
	f.mu.Lock()
	first := !f.panicked
	f.panicked = true
	f.mu.Unlock()
	if first {
		panic("probe exploded")
	}
	return reload.ProbeReport{Total: 1, OK: 1}, nil
}

// TestPanicInStageThenReloadAgain: a transaction that panics inside a
// stage fails its job, and the daemon keeps working: the lock was
// released, so the next reload runs, finishes the dead run's rollback from
// its journal, and commits.
func TestPanicInStageThenReloadAgain(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(target, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fakeHost{gen: reload.Generation{MasterPID: 1, Workers: []reload.Worker{{PID: 2}}}, next: 10}
	cfg := config.Default()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.HAProxy.Configs = []string{target}
	log := slog.New(slog.DiscardHandler)
	rel, err := reload.New(reload.Settings{StateDir: cfg.StateDir, Unit: "haproxy.service", Files: cfg.HAProxy.Configs,
		SettleTimeout: 2 * time.Second, LockWait: true, LockTimeout: time.Second, Probe: true},
		reload.Deps{Checker: f, Reload: f, Unit: f, Master: f, Sweeper: f, Prober: f, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	metrics := api.NewMetrics()
	ad := apiAdapter{cur: nil, log: log}
	w := &watched{}
	ad.cur = &w.cur
	h, err := host.OpenWithoutSystemd(cfg, errors.New("no systemd in this test"), log)
	if err != nil {
		t.Fatal(err)
	}
	w.cur.Store(&pieces{host: h, rel: rel})
	srv, err := api.New(api.Options{Token: []byte("t0ken"), Logger: log, UnitBackend: api.UnitBackend{Metrics: metrics,
		Checker: ad, Reloader: ad, Hasher: ad, Ghosts: newSweeps(metrics, log, ad.RunningSHA256), Prober: ad, Status: ad}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	reloadVia := func(body string) api.JobView {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/v1/reloads", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t0ken")
		req.Header.Set("Content-Type", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var j api.JobView
		if err := json.NewDecoder(resp.Body).Decode(&j); err != nil || j.ID == "" {
			t.Fatalf("POST /v1/reloads: %d %v %+v", resp.StatusCode, err, j)
		}
		for deadline := time.Now().Add(10 * time.Second); j.State != "done"; {
			if time.Now().After(deadline) {
				t.Fatalf("job %s still %s", j.ID, j.State)
			}
			time.Sleep(20 * time.Millisecond)
			req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/v1/reloads/"+j.ID, nil)
			req.Header.Set("Authorization", "Bearer t0ken")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			j = api.JobView{}
			err = json.NewDecoder(resp.Body).Decode(&j)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		return j
	}

	first := reloadVia("v2\n")
	if first.Result != api.ResultFailed || !strings.Contains(first.Error, "panicked") {
		t.Fatalf("first job: result %q error %q, want failed with the panic", first.Result, first.Error)
	}
	second := reloadVia("v3\n")
	if second.Result != api.ResultOK {
		t.Fatalf("second job: result %q error %q, want ok: the panic must not keep the lock", second.Result, second.Error)
	}
	tx, _ := json.Marshal(second.Transaction)
	if !bytes.Contains(tx, []byte(`"name":"recover"`)) || !bytes.Contains(tx, []byte("died at stage probe after install; rolled back")) {
		t.Errorf("second job did not finish the dead run's rollback first: %s", tx)
	}
	if b, _ := os.ReadFile(target); string(b) != "v3\n" {
		t.Errorf("target holds %q, want v3", b)
	}
}
