// Package mastertest runs the real haproxy binary in master-worker mode,
// started by hand in a test's temp dir (tier 2: no systemd), plus ghosts
// started the same way, for tests of the master CLI client and of the
// process sweep.
package mastertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/internal/testbed"
)

// Master is an `haproxy -W -S <sock> -f <cfg>` started by the test, in the
// foreground, so the master is the test process's child.
type Master struct {
	PID    int
	Dir    string
	Socket string
	Config string
	Client *master.Client

	cmd  *exec.Cmd
	out  *testbed.SyncBuffer
	done chan struct{}
}

// Start writes cfg and starts a master-worker haproxy on it. It returns
// once `show proc` lists a worker; the master (and so its workers) is
// stopped when t ends.
func Start(t testing.TB, cfg string) *Master {
	t.Helper()
	return StartBinary(t, testbed.HAProxyBin(), cfg)
}

// StartBinary is Start with another haproxy executable (for example a
// copy that the test deletes afterwards).
func StartBinary(t testing.TB, bin, cfg string) *Master {
	t.Helper()
	dir := t.TempDir()
	m := &Master{
		Dir:    dir,
		Socket: filepath.Join(dir, "master.sock"),
		Config: filepath.Join(dir, "haproxy.cfg"),
		out:    &testbed.SyncBuffer{},
		done:   make(chan struct{}),
	}
	m.WriteConfig(t, cfg)
	m.Client = master.New(m.Socket)
	m.cmd = exec.Command(bin, "-W", "-S", m.Socket, "-f", m.Config)
	m.cmd.Dir = dir
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("mastertest: start haproxy: %v", err)
	}
	m.PID = m.cmd.Process.Pid
	untrack := testbed.Track(t, m.PID, "haproxy master (mastertest)")
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() { m.stop(t); untrack() })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.WaitFor(ctx, func(sp *master.ShowProc) bool { return len(sp.Workers) > 0 }); err != nil {
		t.Fatalf("mastertest: haproxy did not start a worker: %v\noutput:\n%s", err, m.Output())
	}
	return m
}

// CopyBinary copies the haproxy binary into dir as dir/haproxy, for tests
// that delete a running executable.
func CopyBinary(t testing.TB, dir string) string {
	t.Helper()
	b, err := os.ReadFile(testbed.HAProxyBin())
	if err != nil {
		t.Fatalf("mastertest: %v", err)
	}
	path := filepath.Join(dir, "haproxy")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatalf("mastertest: %v", err)
	}
	return path
}

// Output is what the master and its workers printed so far.
func (m *Master) Output() string { return m.out.String() }

// WriteConfig replaces the config file (the next reload reads it).
func (m *Master) WriteConfig(t testing.TB, cfg string) {
	t.Helper()
	if err := os.WriteFile(m.Config, []byte(cfg), 0o644); err != nil {
		t.Fatalf("mastertest: %v", err)
	}
}

// ShowProc asks the master for `show proc`, retrying (bounded) while it
// is re-executing itself and answers nothing.
func (m *Master) ShowProc(ctx context.Context) (*master.ShowProc, error) {
	var last error
	for range 500 {
		sp, err := m.Client.ShowProc(ctx)
		if err == nil {
			return sp, nil
		}
		last = err
		select {
		case <-m.done:
			return nil, fmt.Errorf("master exited: %w", last)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil, last
}

// WaitFor polls `show proc` (bounded) until ok accepts it.
func (m *Master) WaitFor(ctx context.Context, ok func(*master.ShowProc) bool) (*master.ShowProc, error) {
	var sp *master.ShowProc
	for range 500 {
		var err error
		if sp, err = m.ShowProc(ctx); err != nil {
			return nil, err
		}
		if ok(sp) {
			return sp, nil
		}
		select {
		case <-ctx.Done():
			return sp, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return sp, errors.New("condition not met")
}

// Reload sends `reload` on the master CLI and waits until the master has
// counted it and either a worker of the new generation runs or the reload
// was counted as failed. It returns the `show proc` seen then.
func (m *Master) Reload(t testing.TB) *master.ShowProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, err := m.ShowProc(ctx)
	if err != nil {
		t.Fatalf("mastertest: %v", err)
	}
	if _, err := m.Client.Reload(ctx); err != nil {
		t.Fatalf("mastertest: reload: %v", err)
	}
	sp, err := m.WaitFor(ctx, func(sp *master.ShowProc) bool {
		if sp.Reloads <= before.Reloads {
			return false
		}
		if sp.FailedReloads > 0 {
			return true
		}
		for _, w := range sp.Workers {
			if w.Generation == sp.Reloads {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("mastertest: reload not seen in show proc: %v (last %+v)\noutput:\n%s", err, sp, m.Output())
	}
	return sp
}

func (m *Master) stop(t testing.TB) {
	start, err := testbed.StartTime(m.PID)
	if err == nil {
		_ = signalIfSame(m.PID, start, syscall.SIGTERM)
	}
	select {
	case <-m.done:
		return
	case <-time.After(10 * time.Second):
	}
	if err == nil {
		_ = signalIfSame(m.PID, start, syscall.SIGKILL)
	}
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		t.Errorf("mastertest: haproxy master %d did not exit", m.PID)
	}
}

// Ghost is an haproxy started by hand (`haproxy -db -f cfg`), the way a
// forgotten manual start leaves one behind.
type Ghost struct {
	PID  int
	cmd  *exec.Cmd
	out  *testbed.SyncBuffer
	done chan struct{}
}

// StartGhost starts a foreground haproxy on cfg and waits (bounded) until
// it listens. It is killed when t ends.
func StartGhost(t testing.TB, cfg string) *Ghost {
	t.Helper()
	return StartGhostBinary(t, testbed.HAProxyBin(), cfg)
}

// StartGhostBinary is StartGhost with another haproxy executable (for
// example a copy that the test deletes afterwards).
func StartGhostBinary(t testing.TB, bin, cfg string) *Ghost {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ghost.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &Ghost{out: &testbed.SyncBuffer{}, done: make(chan struct{})}
	g.cmd = exec.Command(bin, "-db", "-f", path)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("mastertest: start ghost: %v", err)
	}
	g.PID = g.cmd.Process.Pid
	untrack := testbed.Track(t, g.PID, "haproxy ghost (mastertest)")
	done := g.done
	go func() { _ = g.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if st, err := testbed.StartTime(g.PID); err == nil {
			_ = signalIfSame(g.PID, st, syscall.SIGKILL)
		}
		<-done
		untrack()
	})
	for i := 0; ; i++ {
		if n, _ := testbed.ListeningSockets(g.PID); n > 0 {
			return g
		}
		select {
		case <-done:
			t.Fatalf("mastertest: ghost exited before listening:\n%s", g.out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if i > 1000 {
			t.Fatalf("mastertest: ghost not listening after 10s:\n%s", g.out.String())
		}
	}
}

// Wait waits until the ghost has exited and been reaped.
func (g *Ghost) Wait(ctx context.Context) error {
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exited reports whether the ghost has exited and been reaped.
func (g *Ghost) Exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// Output is what the ghost printed so far.
func (g *Ghost) Output() string { return g.out.String() }

// signalIfSame signals pid only while it is still the process that
// started at start (a recycled PID is left alone).
func signalIfSame(pid int, start uint64, sig syscall.Signal) error {
	st, err := testbed.StartTime(pid)
	if err != nil || st != start {
		return nil
	}
	return syscall.Kill(pid, sig)
}

// Serving is the worker left serving after a failed reload: 2.6 and 3.0
// keep it under "# workers"; 3.1+ lists no current worker and moves it
// under "# old workers", where it is the one that survived the fewest
// reloads.
func Serving(t testing.TB, sp *master.ShowProc) master.Proc {
	t.Helper()
	if len(sp.Workers) == 1 {
		return sp.Workers[0]
	}
	if len(sp.Workers) > 1 || len(sp.OldWorkers) == 0 {
		t.Fatalf("mastertest: no single serving worker in %+v", sp)
	}
	newest := sp.OldWorkers[0]
	for _, w := range sp.OldWorkers[1:] {
		if w.Reloads < newest.Reloads {
			newest = w
		}
	}
	return newest
}
