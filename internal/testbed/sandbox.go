package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Sandbox is a real systemd booted as PID 1 of private PID, mount, UTS, IPC
// and cgroup namespaces, in its own cgroup2 subtree, sharing the host's
// network namespace (everything listens on loopback) and the host's /etc,
// /usr and /var. /tmp, /run, /var/tmp and /dev are private (docs/testing.md).
type Sandbox struct {
	dir    string // shared directory, same path on the host and in the box
	cgroup string // host path of the box's cgroup2 subtree
	logf   func(format string, args ...any)

	cmd     *exec.Cmd // the launcher that exec'd into systemd
	pid     int       // host PID of the box's systemd
	start   uint64    // its start time, so a recycled PID is never killed
	untrack func()

	mu      sync.Mutex
	procs   []*Proc // processes started with Start/Spawn, killed at Close
	ghostN  int
	closed  bool
	closeMu sync.Mutex
}

// Options configure Open.
type Options struct {
	// Dir is the directory shared with the box (see RunDir, MakeRunDir).
	Dir string
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// Boot boots a sandbox for t and waits until systemd reports running (or
// degraded). t.Cleanup tears it down and fails t if anything it started is
// still alive afterwards.
func Boot(t testing.TB) *Sandbox {
	t.Helper()
	Require(t, TierSystem)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Open(ctx, Options{Dir: RunDir(t), Logf: t.Logf})
	if err != nil {
		t.Fatalf("testbed: boot sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testbed: tear down sandbox: %v", err)
		}
	})
	return s
}

// Open boots a sandbox outside of `go test` (the demo uses it). The caller
// must call Close. Processes are recorded with the leftover tracker, so a
// crashed caller's box is killed by the next run.
func Open(ctx context.Context, o Options) (*Sandbox, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	reapLeftovers(logf)
	s := &Sandbox{dir: o.Dir, logf: logf}
	if err := s.launch(); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.waitRunning(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// launch prepares the seed files and cgroup, then starts the launcher.
func (s *Sandbox) launch() error {
	id := filepath.Base(s.dir)
	if _, ok := parseOwner(strings.SplitN(id, ".", 2)[0]); !ok {
		return fmt.Errorf("sandbox dir %s: name must start with an owner id (use RunDir or MakeRunDir)", s.dir)
	}
	seed := filepath.Join(s.dir, ".box")
	if err := prepareSeed(seed); err != nil {
		return fmt.Errorf("prepare box files: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(seed, filepath.Dir(dropIn)), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(seed, dropIn), []byte(haproxyDropIn(s.HAProxyConfig())), 0o644); err != nil {
		return err
	}
	if err := seedUnit(seed); err != nil {
		return err
	}
	cg, err := newCgroup(id)
	if err != nil {
		return err
	}
	s.cgroup = cg
	cgfd, err := syscall.Open(cg, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", cg, err)
	}
	defer syscall.Close(cgfd)
	console := filepath.Join(s.dir, "console.log")
	out, err := os.OpenFile(console, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("/bin/sh", "-c", launcherScript)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"BOX_SEED=" + seed,
		"BOX_CONSOLE=" + console,
		"BOX_HOSTNAME=haguard-box",
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		UseCgroupFD: true,
		CgroupFD:    cgfd,
		// If the test process dies, the box dies with it.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sandbox launcher: %w", err)
	}
	s.cmd = cmd
	s.pid = cmd.Process.Pid
	st, err := StartTime(s.pid)
	if err != nil {
		return fmt.Errorf("sandbox launcher died at once (see %s): %w", console, err)
	}
	s.start = st
	if s.untrack, err = track(s.pid, "sandbox systemd "+s.dir); err != nil {
		return err
	}
	s.logf("testbed: sandbox systemd is host pid %d, dir %s", s.pid, s.dir)
	return nil
}

// waitRunning polls `systemctl is-system-running` until the boot is over.
func (s *Sandbox) waitRunning(ctx context.Context) error {
	var last string
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.cmd.ProcessState != nil || !s.alive() {
			return fmt.Errorf("sandbox systemd exited during boot; console:\n%s", s.Console())
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, _, _ := s.Run(cctx, "systemctl", "is-system-running")
		cancel()
		last = strings.TrimSpace(out)
		switch last {
		case "running":
			return nil
		case "degraded":
			failed, _, _ := s.Run(ctx, "systemctl", "--failed", "--no-legend", "--plain")
			s.logf("testbed: sandbox is degraded; failed units:\n%s", failed)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sandbox did not finish booting (last state %q): %w; console:\n%s", last, ctx.Err(), s.Console())
		case <-tick.C:
		}
	}
}

func (s *Sandbox) alive() bool {
	st, err := StartTime(s.pid)
	return err == nil && st == s.start
}

// Console returns what the box's systemd wrote to its console so far.
func (s *Sandbox) Console() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "console.log"))
	return string(b)
}

// Close kills everything the sandbox runs and removes its cgroup. It
// SIGKILLs the box's systemd by host PID (after checking its start time):
// the kernel then kills every process of the PID namespace, and the private
// mounts vanish with the mount namespace. It returns an error if a process
// it started is still alive afterwards. Close is idempotent.
func (s *Sandbox) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		if err := KillTracked(s.pid, s.start); err != nil {
			errs = append(errs, fmt.Errorf("kill sandbox systemd %d: %w", s.pid, err))
		}
		_ = s.cmd.Wait()
	}
	if s.cgroup != "" {
		if err := removeCgroup(s.cgroup); err != nil {
			errs = append(errs, err)
		}
	}
	if s.untrack != nil {
		s.untrack()
	}
	// Everything this sandbox started must be gone now.
	var left []string
	if s.start != 0 && s.alive() {
		left = append(left, fmt.Sprintf("systemd %d", s.pid))
	}
	for _, p := range procs {
		if p.Alive() {
			left = append(left, fmt.Sprintf("%d (%s)", p.HostPID, p.what))
		}
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes still alive after teardown: %s", strings.Join(left, ", ")))
	}
	return errors.Join(errs...)
}

// HostPID is the host PID of the box's systemd (PID 1 inside).
func (s *Sandbox) HostPID() int { return s.pid }

// Cgroup is the host path of the box's cgroup2 subtree; inside the box it
// is "/". A unit's cgroup seen from the host is Cgroup()+"/system.slice/…".
func (s *Sandbox) Cgroup() string { return s.cgroup }

// BusAddress is the address of the box's system bus as seen from the host.
func (s *Sandbox) BusAddress() string {
	return "unix:path=" + s.HostPath("/run/dbus/system_bus_socket")
}

// HostPath is the host-visible path of path p inside the box.
func (s *Sandbox) HostPath(p string) string {
	return fmt.Sprintf("/proc/%d/root%s", s.pid, filepath.Join("/", p))
}

// Dir is the sandbox's shared directory: the same path on the host and in
// the box (it is not under /tmp, which the box hides).
func (s *Sandbox) Dir() string { return s.dir }

// MakeRunDir creates a run directory like RunDir for callers without a
// testing.TB (the demo); the caller removes it. A crashed caller's
// directory is removed by the next run.
func MakeRunDir(tag string) (string, error) {
	runSeq.Lock()
	runSeq.n++
	n := runSeq.n
	runSeq.Unlock()
	dir := filepath.Join(StateRoot(), "runs", fmt.Sprintf("%s.%s%d", self(), tag, n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}
