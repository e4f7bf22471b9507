package reload_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// The fault harness (issue 16): faults injected into real reloads in the
// sandbox. After each one the config on disk is byte-identical to the old
// or the new one, running.json never names a set the disk does not hold
// for the generation it names, and the next plain `haguard reload`
// recovers to exit 0, after which `status` exits 0 (what is recorded is
// what runs) and traffic flows.
//
// `make test` runs a reduced set; `make test-faults` the full one:
//
//	HAGUARD_FAULTS=full    every stage with both a good and a failing
//	                       candidate, and HAGUARD_FAULT_SIGNALS (default
//	                       20 in full, 2 otherwise) runs per signal
//	HAGUARD_FAULT_SEED=N   the seed of the signal offsets and candidates
//	                       (default: the time; logged, to replay a run)

func faultsFull() bool { return os.Getenv("HAGUARD_FAULTS") == "full" }

func faultSignals() int {
	if n, err := strconv.Atoi(os.Getenv("HAGUARD_FAULT_SIGNALS")); err == nil && n > 0 {
		return n
	}
	if faultsFull() {
		return 20
	}
	return 2
}

func faultSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("HAGUARD_FAULT_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("fault seed %d (replay: HAGUARD_FAULT_SEED=%d)", seed, seed)
	return seed
}

// faultBox is a box whose config moves on from fault to fault.
type faultBox struct {
	*box
	backend string
	dead    string
	n       int
}

func newFaultBox(t *testing.T) *faultBox {
	b := newBox(t)
	return &faultBox{box: b, backend: testbed.TCPBackend(t), dead: testbed.DeadAddr(t)}
}

// next writes a new candidate: a good one (another comment) or one whose
// backend is dead (the probe fails, so it is rolled back).
func (f *faultBox) next(t *testing.T, failing bool) (path, body string) {
	t.Helper()
	f.n++
	body = testbed.TCPProxyConfig(f.listen, f.backend) + fmt.Sprintf("\n# v%d\n", f.n)
	if failing {
		body = testbed.TCPProxyConfig(f.listen, f.dead) + fmt.Sprintf("\n# dead v%d\n", f.n)
	}
	return f.candidate(t, fmt.Sprintf("v%d.cfg", f.n), body), body
}

// afterFault checks what the fault left and that the host recovers; what
// names the fault in messages.
func (f *faultBox) afterFault(t *testing.T, what, old, cand string) {
	t.Helper()
	disk := f.disk(t)
	if disk != old && disk != cand {
		t.Fatalf("%s: the config on disk is neither the old one nor the candidate:\n%s", what, disk)
	}
	// No false record: running.json names what the disk holds, or an
	// older generation than the one that runs (then status and the next
	// reload treat it as unknown, never as the truth).
	var run reload.Running
	if b, err := os.ReadFile(f.stateFile("running.json")); err == nil {
		if err := json.Unmarshal(b, &run); err != nil {
			t.Fatalf("%s: running.json does not parse: %v", what, err)
		}
		if sp := f.showProc(t); run.MasterPID == int(sp.Master.PID) && run.Reloads == sp.Reloads && run.SHA256 != shaOf(disk) && !f.inFlight(t) {
			t.Fatalf("%s: running.json names %s for the running generation, the disk holds %s", what, run.SHA256[:12], shaOf(disk)[:12])
		}
	}
	res, code := f.reloadJSON(t, nil)
	if code != 0 {
		t.Fatalf("%s: the next plain reload: exit %d, stages %+v", what, code, res.Stages)
	}
	if st, _, code := f.haguard(t, nil, "status"); code != 0 {
		t.Fatalf("%s: status after the recovery: exit %d\n%s", what, code, st)
	}
	if ok, fail := f.trafficN(t, 5); fail != 0 {
		t.Fatalf("%s: traffic after the recovery: %d OK, %d failed", what, ok, fail)
	}
}

// inFlight says whether a journal is there: a run died mid-transaction and
// running.json is then the next run's to settle.
func (f *faultBox) inFlight(t *testing.T) bool {
	_, err := os.Stat(f.stateFile("journal.json"))
	return err == nil
}

// TestSystemFaultsStateDirFull fills the state dir (a small tmpfs) once
// the run has journaled each stage in turn, with a good and a failing
// candidate.
func TestSystemFaultsStateDirFull(t *testing.T) {
	f := newFaultBox(t)
	f.stateOnTmpfs(t, "1m")
	stages := []string{reload.StageCheck, reload.StageSnapshot, reload.StageInstall, reload.StageReload,
		reload.StageSettle, reload.StageSweep, reload.StageProbe, "commit"}
	for i, stage := range stages {
		for _, failing := range []bool{false, true} {
			if !faultsFull() && failing != (i%2 == 1) {
				continue // the reduced set: one candidate kind per stage, alternating
			}
			if failing && stage == "commit" {
				continue // a failing candidate never reaches the commit
			}
			what := fmt.Sprintf("ENOSPC at %s (failing candidate: %v)", stage, failing)
			old := f.disk(t)
			path, cand := f.next(t, failing)
			p := f.pausedReload(t, stage, time.Second, "--candidate", path)
			f.fillState(t)
			code := exitCode(t, p)
			t.Logf("%s: exit %d", what, code)
			f.unfillState(t)
			f.afterFault(t, what, old, cand)
		}
	}
}

// TestSystemFaultsReadOnlyConfigDir makes the config's directory read-only
// (a bind mount in the box): the install cannot write, nothing changes,
// and once it is writable again a reload goes through.
func TestSystemFaultsReadOnlyConfigDir(t *testing.T) {
	f := newFaultBox(t)
	dir := filepath.Dir(f.s.HAProxyConfig())
	// The state dir is a tmpfs on top, so that only the config is read-only.
	if _, _, err := f.s.Run(t.Context(), "sh", "-c", "mkdir -p "+f.state+" && mount --bind "+dir+" "+dir+" && mount -o remount,bind,ro "+dir+
		" && mount -t tmpfs -o size=4m tmpfs "+f.state); err != nil {
		t.Fatalf("read-only config dir: %v", err)
	}
	old := f.disk(t)
	path, cand := f.next(t, false)
	_, errOut, code := f.haguard(t, nil, "reload", "--candidate", path)
	t.Logf("reload with a read-only config dir: exit %d\n%s", code, errOut)
	if code == 0 || f.disk(t) != old {
		t.Fatalf("a read-only config dir: exit %d, the old config on disk %v", code, f.disk(t) == old)
	}
	if st, _, code := f.haguard(t, nil, "status"); code != 0 {
		t.Fatalf("status after a refused install: exit %d\n%s", code, st)
	}
	if _, _, err := f.s.Run(t.Context(), "sh", "-c", "umount "+f.state+" && umount "+dir); err != nil {
		t.Fatalf("config dir writable again: %v", err)
	}
	f.afterFault(t, "read-only config dir", old, cand)
	if _, code := f.reloadJSON(t, nil, "--candidate", path); code != 0 || f.disk(t) != cand {
		t.Fatalf("the candidate once the dir is writable: exit %d", code)
	}
}

// TestSystemFaultsSignals sends SIGKILL, SIGTERM and SIGHUP to reloads at
// seeded random offsets into the run (a run takes one to three seconds
// here), with good and failing candidates.
func TestSystemFaultsSignals(t *testing.T) {
	f := newFaultBox(t)
	rng := rand.New(rand.NewPCG(faultSeed(t), 16))
	n := faultSignals()
	sigs := []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.SIGHUP}
	type run struct {
		sig     syscall.Signal
		offset  time.Duration
		failing bool
	}
	var runs []run
	for _, sig := range sigs {
		for range n {
			runs = append(runs, run{sig: sig, offset: time.Duration(rng.IntN(2500)) * time.Millisecond, failing: rng.IntN(3) == 0})
		}
	}
	rng.Shuffle(len(runs), func(i, j int) { runs[i], runs[j] = runs[j], runs[i] })
	for i, r := range runs {
		what := fmt.Sprintf("run %d: %v after %s (failing candidate: %v)", i, r.sig, r.offset, r.failing)
		old := f.disk(t)
		path, cand := f.next(t, r.failing)
		p := f.s.Start(t, f.bin, "--config-file", f.yaml, "reload", "--candidate", path)
		select {
		case <-p.Done():
		case <-time.After(r.offset):
			_ = syscall.Kill(p.HostPID, r.sig)
		}
		<-p.Done()
		t.Logf("%s: %v", what, p.Err())
		f.afterFault(t, what, old, cand)
	}
}
