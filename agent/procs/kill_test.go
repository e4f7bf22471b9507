package procs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeHost is a process table that reacts to signals the way the test
// says, for Killer's decision logic.
type fakeHost struct {
	mu      sync.Mutex
	start   map[int32]uint64 // current start ticks per live pid
	onTerm  map[int32]bool   // exits on SIGTERM
	onKill  map[int32]bool   // exits on SIGKILL (false: unkillable, e.g. D state)
	sent    []string
	sigErrs map[int32]error
}

func (f *fakeHost) stat(pid int32) (uint64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.start[pid]
	if !ok {
		return 0, false, os.ErrNotExist
	}
	return s, false, nil
}

func (f *fakeHost) signal(pid int32, start uint64, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.sigErrs[pid]; err != nil {
		return err
	}
	s, ok := f.start[pid]
	switch {
	case !ok:
		return errGone
	case s != start:
		return errReused
	}
	f.sent = append(f.sent, fmt.Sprintf("%d:%s", pid, sig))
	if (sig == syscall.SIGTERM && f.onTerm[pid]) || (sig == syscall.SIGKILL && f.onKill[pid]) {
		delete(f.start, pid)
	}
	return nil
}

func newFakeKiller(f *fakeHost) *Killer {
	k := NewKiller(30*time.Millisecond, nil)
	k.poll, k.hardWait = time.Millisecond, 30*time.Millisecond
	k.stat, k.signal = f.stat, f.signal
	return k
}

func TestKillOutcomes(t *testing.T) {
	f := &fakeHost{
		start:   map[int32]uint64{101: 5, 102: 6, 103: 99, 105: 8, 106: 9},
		onTerm:  map[int32]bool{101: true},
		onKill:  map[int32]bool{102: true},
		sigErrs: map[int32]error{106: syscall.EPERM},
	}
	ps := []Process{
		{PID: 101, StartTicks: 5, Class: Ghost}, // exits on SIGTERM
		{PID: 102, StartTicks: 6, Class: Ghost}, // ignores SIGTERM
		{PID: 103, StartTicks: 7, Class: Ghost}, // PID reused by another process
		{PID: 104, StartTicks: 8, Class: Ghost}, // already gone
		{PID: 105, StartTicks: 8, Class: Ghost}, // unkillable
		{PID: 106, StartTicks: 9, Class: Ghost}, // not ours to signal
		{PID: 107, Class: Ghost},                // start time unknown
	}
	res := newFakeKiller(f).Kill(context.Background(), ps)
	want := []Outcome{Terminated, Killed, Reused, Gone, Failed, Failed, Failed}
	for i, r := range res {
		if r.PID != ps[i].PID || r.Outcome != want[i] {
			t.Errorf("pid %d: got %s (%s), want %s", ps[i].PID, r.Outcome, r.Error, want[i])
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sent {
		if strings.HasPrefix(s, "103:") {
			t.Fatalf("signalled a reused pid: %v", f.sent)
		}
	}
	if f.start[103] != 99 {
		t.Fatal("the process that reused pid 103 was harmed")
	}
}

func TestKillGhostsOnlyKillsGhosts(t *testing.T) {
	f := &fakeHost{start: map[int32]uint64{1: 1, 2: 2, 3: 3, 4: 4}, onTerm: map[int32]bool{1: true, 2: true, 3: true, 4: true}}
	r := Report{Processes: []Process{
		{PID: 1, StartTicks: 1, Class: Current},
		{PID: 2, StartTicks: 2, Class: Draining},
		{PID: 3, StartTicks: 3, Class: Divergent},
		{PID: 4, StartTicks: 4, Class: Ghost},
	}}
	res := newFakeKiller(f).KillGhosts(context.Background(), r)
	if len(res) != 1 || res[0].PID != 4 || res[0].Outcome != Terminated {
		t.Fatalf("%+v", res)
	}
	if len(f.sent) != 1 {
		t.Fatalf("signals: %v", f.sent)
	}
}

func TestKillInterruptedDoesNotEscalate(t *testing.T) {
	f := &fakeHost{start: map[int32]uint64{1: 1}, onKill: map[int32]bool{1: true}}
	k := newFakeKiller(f)
	k.Grace = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := k.Kill(ctx, []Process{{PID: 1, StartTicks: 1, Class: Ghost}})
	if res[0].Outcome != Failed || len(f.sent) != 1 {
		t.Fatalf("%+v, sent %v", res, f.sent)
	}
}

// TestPIDReuseGuardReal: a real process whose recorded start time does
// not match (as when its PID was recycled) is not signalled; with the
// right start time it is terminated.
func TestPIDReuseGuardReal(t *testing.T) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() { _ = cmd.Process.Kill(); <-done }()
	pid := int32(cmd.Process.Pid)
	start, _, err := StartTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	k := NewKiller(5*time.Second, nil)

	res := k.Kill(context.Background(), []Process{{PID: pid, StartTicks: start + 1, Class: Ghost}})
	if res[0].Outcome != Reused {
		t.Fatalf("mismatched start time: got %+v", res[0])
	}
	if err := signalGuarded(pid, start+1, syscall.SIGKILL); !errors.Is(err, errReused) {
		t.Fatalf("signalGuarded with a stale start time: %v", err)
	}
	select {
	case <-done:
		t.Fatal("the process was signalled despite the start-time mismatch")
	default:
	}
	if _, zombie, err := StartTicks(pid); err != nil || zombie {
		t.Fatalf("process no longer running: zombie=%v err=%v", zombie, err)
	}

	res = k.Kill(context.Background(), []Process{{PID: pid, StartTicks: start, Class: Ghost}})
	if res[0].Outcome != Terminated {
		t.Fatalf("matching start time: got %+v", res[0])
	}
	<-done
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("exit status %v", cmd.ProcessState)
	}
	if err := signalGuarded(pid, start, syscall.SIGTERM); !errors.Is(err, errGone) && !errors.Is(err, errReused) {
		t.Fatalf("signalGuarded on a reaped pid: %v", err)
	}
}
