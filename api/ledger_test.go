package api

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJobsSurviveRestart: a job's id resolves after the daemon restarts
// (a new Server over the same JobDir): a finished job as it ended, with
// its transaction from the Reloader's history; a job the old server
// accepted and never finished (it "crashed" while the job ran) as lost,
// never 404. Half-written records are removed.
func TestJobsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	withDir := func(o *Options) { o.JobDir = dir }
	e1 := newEnv(t, withDir)
	done := waitDone(t, e1, postReload(t, e1, "cand-1", nil).ID)
	if done.Result != ResultOK {
		t.Fatalf("first job: %+v", done)
	}
	gate := make(chan struct{})
	started := make(chan string, 1)
	e1.rel.gate, e1.rel.started = gate, started
	stuck := postReload(t, e1, "cand-2", nil)
	<-started
	t.Cleanup(func() { close(gate) })
	if err := os.WriteFile(filepath.Join(dir, "20261202T000000.000Z-0000.json.tmp"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The "crash": a second daemon over the same ledger while the first
	// never recorded the end of its running job.
	e2 := newEnv(t, withDir)
	var j JobView
	decode(t, e2.do(t, "GET", "/v1/reloads/"+done.ID, nil, nil), http.StatusOK, &j)
	if j.State != stateDone || j.Result != ResultOK || j.Kind != kindReload {
		t.Fatalf("finished job after restart: %+v", j)
	}
	decode(t, e2.do(t, "GET", "/v1/reloads/"+stuck.ID, nil, nil), http.StatusOK, &j)
	if j.State != stateLost || !strings.Contains(j.Error, "stopped before the job finished") {
		t.Fatalf("job lost in the crash: %+v", j)
	}
	resp := e2.do(t, "GET", "/v1/reloads/20261202T000000.000Z-ffff", nil, nil)
	wantError(t, resp, http.StatusNotFound, "not_found")
	if _, err := os.Stat(filepath.Join(dir, "20261202T000000.000Z-0000.json.tmp")); !os.IsNotExist(err) {
		t.Errorf("half-written record left: %v", err)
	}
	// The last finished job is the status's last_reload after restart.
	var st struct {
		LastReload *JobView `json:"last_reload"`
	}
	decode(t, e2.do(t, "GET", "/v1/status", nil, nil), http.StatusOK, &st)
	if st.LastReload == nil || st.LastReload.ID != done.ID {
		t.Fatalf("last_reload after restart: %+v", st.LastReload)
	}
}

// TestJobIDIsTheTransactionID: the Reloader is handed the job id, in the
// history's format.
func TestJobIDIsTheTransactionID(t *testing.T) {
	e := newEnv(t, nil)
	j := waitDone(t, e, postReload(t, e, "cand", nil).ID)
	e.rel.mu.Lock()
	got := e.rel.calls[0].ID
	e.rel.mu.Unlock()
	if got != j.ID || len(j.ID) != len("20261128T020304.567Z-1a2b3c4d") || j.ID[15] != '.' {
		t.Fatalf("job id %q, reloader got %q", j.ID, got)
	}
}
