package reload

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/haguard/haguard/validate"
)

// world is a fake host: a master whose counters move when the unit is
// reloaded, and whose "loaded" config is whatever the target holds then.
type world struct {
	mu      sync.Mutex
	target  string
	master  Generation
	loaded  []byte
	nextPID int
	reloads int // reload jobs issued
	status  string
	procs   []Process
	killed  []int
	// failLoad: a reload whose config contains this fails like haproxy
	// 2.6 does: job done, failed+1, old workers keep serving.
	failLoad string
	// failStatus: a reload whose config contains this counts as a load
	// (reloads+1, new workers, failed unchanged) but the unit's status
	// turns to "Reload failed!": only the status tells.
	failStatus string
	// loadPolls > 0 loads like HAProxy 3.1+: the job ends, the new worker
	// is listed at once and the unit is "reloading" for that many show
	// procs; only then does the load succeed or fail (failLoad).
	loadPolls int
	loading   int  // show procs left before the outcome
	loadFails bool // the outcome
	active    string
	// unitReloading > 0: that many unit reads say "reloading", during
	// which show proc fails as a re-executing master's does.
	unitReloading int
	jobErr        error
	// stuck: the master never takes the reload signal (haproxy #3229):
	// the job ends, nothing moves; sigPending says /proc shows it.
	stuck, sigPending bool
	// serversDown turns be/s1 DOWN whatever is loaded.
	serversDown bool
	// watchErr fails StartWatch; watches counts the watchers started.
	watchErr error
	watches  []string
	// ghostsSteal: every probe fails while a ghost runs (it takes the
	// connections), and a sweep starts only once a probe has run
	// (probed), so that the probe beside the sweep sees the ghost.
	ghostsSteal bool
	probed      chan struct{}
	probes      int
	// counterGaps: after each reload, that many show procs carry no
	// reload counter (-1), as a master read from the process table does
	// when its environment is caught mid-exec.
	counterGaps, gapsLeft int
}

var errRefused = errors.New("dial unix /run/haproxy-master.sock: connect: connection refused")

func newWorld(t *testing.T, target string) *world {
	t.Helper()
	b, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	return &world{target: target, loaded: b, nextPID: 200, status: "Ready.",
		master: Generation{MasterPID: 100, Workers: []Worker{{PID: 101}}}}
}

// Check: "syntax error" is invalid, "lint-error" is an error finding.
func (w *world) Check(_ context.Context, req CheckRequest) (CheckReport, error) {
	var rep CheckReport
	rep.Valid = true
	for _, f := range req.Files {
		if staged, ok := req.Staged[f]; ok {
			f = staged
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return rep, err
		}
		if bytes.Contains(b, []byte("syntax error")) {
			rep.Valid, rep.Output = false, "[ALERT] parsing [x.cfg:3] : unknown keyword 'syntax'"
		}
		if bytes.Contains(b, []byte("lint-error")) {
			rep.Findings = append(rep.Findings, Finding{Rule: "HA003", Severity: "error", Message: "missing timeout"})
		}
	}
	return rep, nil
}

func (w *world) Reload(_ context.Context, _ string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reloads++
	if w.jobErr != nil {
		return w.jobErr
	}
	if w.stuck {
		return nil
	}
	cfg, _ := os.ReadFile(w.target)
	w.master.Reloads++
	if w.loadPolls > 0 {
		w.loading, w.loadFails, w.active, w.status = w.loadPolls, w.failLoad != "" && bytes.Contains(cfg, []byte(w.failLoad)), "reloading", "Reloading Configuration."
		if !w.loadFails {
			w.loaded = cfg
		}
		w.master.OldWorkers = append(w.master.OldWorkers, w.master.Workers...)
		w.master.Workers = []Worker{{PID: w.nextPID}}
		w.nextPID++
		return nil
	}
	if w.failLoad != "" && bytes.Contains(cfg, []byte(w.failLoad)) {
		w.master.Failed++
		w.status = "Reload failed!"
		return nil // systemd says done
	}
	w.loaded = cfg
	w.status = "Ready."
	if w.failStatus != "" && bytes.Contains(cfg, []byte(w.failStatus)) {
		w.status = "Reload failed!"
	}
	w.master.OldWorkers = append(w.master.OldWorkers, w.master.Workers...)
	w.master.Workers = []Worker{{PID: w.nextPID}}
	w.nextPID++
	w.gapsLeft = w.counterGaps
	return nil
}

func (w *world) UnitState(context.Context, string) (UnitState, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unitReloading > 0 {
		w.unitReloading--
		return UnitState{ActiveState: "reloading", SubState: "reload", StatusText: w.status, MainPID: w.master.MasterPID}, nil
	}
	return UnitState{ActiveState: cmp.Or(w.active, "active"), SubState: "running", StatusText: w.status, MainPID: w.master.MasterPID}, nil
}

func (w *world) ShowProc(context.Context) (Generation, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unitReloading > 0 {
		return Generation{}, errRefused
	}
	if w.loading > 0 {
		if w.loading--; w.loading == 0 {
			w.active, w.status = "active", "Ready."
			if w.loadFails { // 3.1+: no current worker; the one serving is old
				w.master.Failed++
				w.master.Workers, w.status = nil, "Reload failed!"
			}
		}
	}
	g := w.master
	if w.gapsLeft > 0 {
		w.gapsLeft--
		g.Reloads, g.Failed = -1, -1
	}
	g.Workers = append([]Worker(nil), g.Workers...)
	g.OldWorkers = append([]Worker(nil), g.OldWorkers...)
	return g, nil
}

func (w *world) StartupLogs(context.Context) (string, error) {
	return "[ALERT] Starting proxy app: cannot bind socket", nil
}

func (w *world) Sweep(context.Context) (SweepReport, error) {
	if w.probed != nil {
		<-w.probed
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return SweepReport{Processes: append([]Process(nil), w.procs...)}, nil
}

func (w *world) Kill(_ context.Context, ps []Process) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	dead := map[int]bool{}
	for _, p := range ps {
		dead[p.PID] = true
		w.killed = append(w.killed, p.PID)
	}
	var keep []Process
	for _, p := range w.procs {
		if !dead[p.PID] {
			keep = append(keep, p)
		}
	}
	w.procs = keep
	return nil
}

// Probe fails every attempt when the loaded config contains "dead".
func (w *world) Learn(context.Context) (ProbeBaseline, error) { return nil, nil }

func (w *world) Probe(context.Context, *validate.Config, ProbeBaseline) (ProbeReport, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.probes++
	if w.probed != nil && w.probes == 1 {
		defer close(w.probed)
	}
	stolen := w.ghostsSteal && slices.ContainsFunc(w.procs, func(p Process) bool { return p.Class == ClassGhost })
	rep := ProbeReport{Total: 4}
	for range 4 {
		a := ProbeAttempt{Target: "127.0.0.1:3307", Kind: "tcp", OK: !bytes.Contains(w.loaded, []byte("dead")) && !stolen}
		if !a.OK {
			a.Error = "connection closed by haproxy"
			rep.Failed++
		} else {
			rep.OK++
		}
		rep.Attempts = append(rep.Attempts, a)
	}
	rep.Servers = w.servers()
	return rep, nil
}

// Health has one server, be/s1, DOWN when the loaded config contains
// "downserver".
func (w *world) Health(context.Context) ([]ServerHealth, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.servers(), nil
}

func (w *world) servers() []ServerHealth {
	if w.serversDown || bytes.Contains(w.loaded, []byte("downserver")) {
		return []ServerHealth{{Backend: "be", Server: "s1", Status: "DOWN", Check: "L4CON"}}
	}
	return []ServerHealth{{Backend: "be", Server: "s1", Status: "UP", Check: "L4OK"}}
}

func (w *world) ReloadPending(pid int) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stuck && w.sigPending && pid == w.master.MasterPID, nil
}

func (w *world) StartWatch(_ context.Context, id string, _ time.Time) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watchErr != nil {
		return "", w.watchErr
	}
	w.watches = append(w.watches, id)
	return "haguard-confirm-" + id + ".service", nil
}

func (w *world) deps() Deps {
	return Deps{Checker: w, Reload: w, Unit: w, Master: w, Sweeper: w, Prober: w, Logs: w, Signals: w, Watcher: w}
}

// fixture is a state dir, a target holding "good v1" and a Reloader.
type fixture struct {
	dir, target string
	w           *world
	r           *Reloader
	s           Settings
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	target := dir + "/haproxy.cfg"
	if err := os.WriteFile(target, []byte("good v1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, target)
	s := Settings{StateDir: dir + "/state", Unit: "haproxy.service", Files: []string{target},
		SettleTimeout: 2 * time.Second, LockWait: true, LockTimeout: 5 * time.Second, HistoryKeep: 5, Probe: true}
	r, err := New(s, w.deps())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, target: target, w: w, r: r, s: s}
}

func (f *fixture) candidate(t *testing.T, body string) string {
	t.Helper()
	p := f.dir + "/cand-" + sha([]byte(body))[:8] + ".cfg"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) disk(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(f.target)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func stageNames(r Result) []string {
	var out []string
	for _, s := range r.Stages {
		out = append(out, s.Name)
	}
	return out
}

var errJob = errors.New(`job for haproxy.service finished with result "failed"`)
