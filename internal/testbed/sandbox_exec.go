package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// boxEnv is the environment of commands run in the box: a clean one, so
// nothing of the host's (a bus address, a TMPDIR) leaks in. Prefix argv
// with "env", "K=V" to add variables.
var boxEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
}

// nsenterArgs enters every namespace of the box except the network one,
// which the box shares with the host anyway.
func (s *Sandbox) nsenterArgs(argv []string) []string {
	return append([]string{"-t", strconv.Itoa(s.pid), "-m", "-p", "-u", "-i", "-C", "--"}, argv...)
}

// Run runs argv inside the box (nsenter -t PID -m -p -u -i -C) and waits.
// The error includes stderr. Inside, PIDs, cgroups and the bus socket are
// the box's own: this is the production situation for haguard.
func (s *Sandbox) Run(ctx context.Context, argv ...string) (stdout, stderr string, err error) {
	if len(argv) == 0 {
		return "", "", errors.New("run: empty argv")
	}
	cmd := exec.CommandContext(ctx, "nsenter", s.nsenterArgs(argv)...)
	cmd.Env = boxEnv
	cmd.WaitDelay = 2 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), e.String(), fmt.Errorf("in box: %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), nil
}

// Systemctl runs systemctl inside the box and returns its stdout.
func (s *Sandbox) Systemctl(ctx context.Context, args ...string) (string, error) {
	out, _, err := s.Run(ctx, append([]string{"systemctl"}, args...)...)
	return out, err
}

// Proc is a process running in the box in the background.
type Proc struct {
	// HostPID is the process's PID on the host (what host tools see).
	HostPID int
	// BoxPID is the same process's PID inside the box (what systemd, the
	// master CLI and haguard run in the box see).
	BoxPID int
	// Cmd is the nsenter command that started it (HostPID's parent); nil
	// for a daemon (StartGhostDaemon).
	Cmd *exec.Cmd

	what    string
	start   uint64
	done    chan struct{}
	untrack []func()
	waitErr error
}

// Start runs argv in the box in the background, outside every unit (its
// cgroup reads "0::/.." inside the box). It is tracked and killed when t
// ends (and at the latest when the box goes down).
func (s *Sandbox) Start(t testing.TB, argv ...string) *Proc {
	t.Helper()
	p, err := s.Spawn(context.Background(), argv...)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(p.kill)
	return p
}

// Spawn is Start without a testing.TB; the sandbox kills the process at
// Close.
func (s *Sandbox) Spawn(ctx context.Context, argv ...string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("spawn: empty argv")
	}
	cmd := exec.Command("nsenter", s.nsenterArgs(argv)...)
	cmd.Env = boxEnv
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("spawn %s: %w", strings.Join(argv, " "), err)
	}
	p := &Proc{Cmd: cmd, what: strings.Join(argv, " "), done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if u, err := track(cmd.Process.Pid, "nsenter "+p.what); err == nil {
		p.untrack = append(p.untrack, u)
	}
	// nsenter forks once to enter the PID namespace: the program is its child.
	child, err := waitChild(ctx, cmd.Process.Pid, p.done)
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("spawn %s: %w (output: %s)", p.what, err, strings.TrimSpace(p.Output()))
	}
	p.HostPID = child
	p.start, _ = StartTime(child)
	p.BoxPID = innerPID(child)
	if u, err := track(child, p.what); err == nil {
		p.untrack = append(p.untrack, u)
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// waitChild waits (bounded) until pid has a child and returns it.
func waitChild(ctx context.Context, pid int, done <-chan struct{}) (int, error) {
	for range 400 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
		select {
		case <-done:
			return 0, errors.New("exited before it could be seen")
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return 0, errors.New("nsenter started no child")
}

// innerPID maps a host PID to the PID it has in its innermost namespace
// (the last field of the NSpid line of /proc/PID/status).
func innerPID(hostPID int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", hostPID))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[len(f)-1])
				return n
			}
		}
	}
	return 0
}

// Alive reports whether the process (the program, not nsenter) still runs.
func (p *Proc) Alive() bool {
	if p.HostPID == 0 {
		return false
	}
	st, err := StartTime(p.HostPID)
	return err == nil && st == p.start && !zombie(p.HostPID)
}

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how nsenter (and so the program) exited; valid once Done is
// closed (nil for a daemon).
func (p *Proc) Err() error {
	<-p.done
	return p.waitErr
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Proc) Output() string {
	if p.Cmd == nil {
		return ""
	}
	if w, ok := p.Cmd.Stdout.(*SyncBuffer); ok {
		return w.String()
	}
	return ""
}

// kill SIGKILLs the program and nsenter (by PID and start time) and reaps.
func (p *Proc) kill() {
	if p.HostPID != 0 {
		_ = KillTracked(p.HostPID, p.start)
	}
	if p.Cmd != nil && p.Cmd.Process != nil {
		_ = p.Cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
	for _, u := range p.untrack {
		u()
	}
	p.untrack = nil
}

// Kill kills the process now (it is killed at cleanup anyway).
func (p *Proc) Kill() { p.kill() }

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// SyncBuffer is an io.Writer that is safe to read (String) while a process
// writes to it; a process's stdout and stderr may share one.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *SyncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *SyncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// HostPIDOf maps a PID seen inside the box (D-Bus MainPID, `show proc`, a
// pidfile) to the host PID of the same process, through the NSpid line of
// every host process in the box's PID namespace.
func (s *Sandbox) HostPIDOf(boxPID int) (int, error) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", s.pid))
	if err != nil {
		return 0, fmt.Errorf("box pid namespace: %w", err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); l != ns {
			continue
		}
		if innerPID(pid) == boxPID {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process with pid %d in the box", boxPID)
}
