package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MasterSocket is where Debian's haproxy.service puts the master CLI
// (EXTRAOPTS=-S /run/haproxy-master.sock), a path inside the box.
const MasterSocket = "/run/haproxy-master.sock"

// dropIn is the box's runtime drop-in that points haproxy.service at the
// managed config; /etc/haproxy (shared with the host) is never touched.
const dropIn = "/run/systemd/system/haproxy.service.d/haguard-testbed.conf"

// HAProxyConfig is the managed config path haproxy.service runs with. It is
// in the shared directory, so the same path works on the host and inside.
func (s *Sandbox) HAProxyConfig() string { return filepath.Join(s.dir, "haproxy.cfg") }

// WriteHAProxyConfig replaces the managed config atomically (temp file in
// the same directory, fsync, rename). It does not reload.
func (s *Sandbox) WriteHAProxyConfig(t testing.TB, cfg string) {
	t.Helper()
	if err := writeAtomic(s.HAProxyConfig(), cfg); err != nil {
		t.Fatalf("testbed: %v", err)
	}
}

// StartHAProxy writes cfg as the managed config, points Debian's
// haproxy.service at it with a runtime drop-in (Environment=CONFIG=…),
// starts the unit and waits until it is active and its master CLI answers
// `show proc`.
func (s *Sandbox) StartHAProxy(t testing.TB, cfg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.StartHAProxyContext(ctx, cfg); err != nil {
		t.Fatalf("testbed: %v", err)
	}
}

// StartHAProxyContext is StartHAProxy without a testing.TB.
func (s *Sandbox) StartHAProxyContext(ctx context.Context, cfg string) error {
	if err := writeAtomic(s.HAProxyConfig(), cfg); err != nil {
		return err
	}
	// The drop-in is normally in place since boot (seeded into /run); a
	// daemon-reload (about 0.5 s) is only needed if someone changed it.
	unit := haproxyDropIn(s.HAProxyConfig())
	if b, err := os.ReadFile(s.HostPath(dropIn)); err != nil || string(b) != unit {
		if err := os.MkdirAll(filepath.Dir(s.HostPath(dropIn)), 0o755); err != nil {
			return err
		}
		if err := writeAtomic(s.HostPath(dropIn), unit); err != nil {
			return err
		}
		if _, err := s.Systemctl(ctx, "daemon-reload"); err != nil {
			return err
		}
	}
	if _, err := s.Systemctl(ctx, "start", "haproxy.service"); err != nil {
		journal, _, _ := s.Run(ctx, "journalctl", "--no-pager", "-n", "40", "-u", "haproxy.service")
		return fmt.Errorf("start haproxy.service: %w\n%s", err, journal)
	}
	// Active is not enough: haproxy 3.0's master sends READY=1 and then
	// re-executes itself into wait mode, and only that one serves the
	// master CLI; until it does, the socket file exists and refuses
	// connections (about 1 run in 6 here). 2.6 answered once active.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		state, _ := s.Systemctl(ctx, "is-active", "haproxy.service")
		var cerr error
		if strings.TrimSpace(state) == "active" {
			var out string
			out, cerr = s.MasterCLI(ctx, "show proc")
			if cerr == nil && strings.Contains(out, "master") {
				return nil
			}
			if cerr == nil {
				cerr = fmt.Errorf("show proc answered %q", out)
			}
		}
		select {
		case <-ctx.Done():
			journal, _, _ := s.Run(context.Background(), "journalctl", "--no-pager", "-n", "40", "-u", "haproxy.service")
			return fmt.Errorf("haproxy.service not active with a master CLI that answers (state %q, master CLI: %v): %w\n%s",
				strings.TrimSpace(state), cerr, ctx.Err(), journal)
		case <-tick.C:
		}
	}
}

// MasterCLI sends one command to the box's haproxy master CLI (through the
// host-visible path of /run/haproxy-master.sock) and returns the answer.
// PIDs in the answer (e.g. `show proc`) are PIDs inside the box.
func (s *Sandbox) MasterCLI(ctx context.Context, cmd string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s.HostPath(MasterSocket))
	if err != nil {
		return "", fmt.Errorf("master cli: %w", err)
	}
	defer c.Close()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	_ = c.SetDeadline(dl)
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", fmt.Errorf("master cli %q: %w", cmd, err)
	}
	// The CLI answers and closes once it sees the end of our input.
	if uc, ok := c.(*net.UnixConn); ok {
		_ = uc.CloseWrite()
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return string(b), fmt.Errorf("master cli %q: %w", cmd, err)
	}
	return string(b), nil
}

// StartGhost starts an haproxy by hand inside the box, outside the unit's
// cgroup, in the foreground (`haproxy -db -f <cfg>`), the way a forgotten
// manual start leaves one behind. Give it an old config that binds the same
// address as the unit: haproxy sets SO_REUSEPORT, so both listen and the
// kernel splits new connections between them. It returns once the ghost
// listens; it is killed when t ends.
func (s *Sandbox) StartGhost(t testing.TB, cfg string) *Proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := s.SpawnGhost(ctx, cfg)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(p.kill)
	return p
}

// SpawnGhost is StartGhost without a testing.TB; the sandbox kills it at
// Close.
func (s *Sandbox) SpawnGhost(ctx context.Context, cfg string) (*Proc, error) {
	path, err := s.writeGhostConfig(cfg)
	if err != nil {
		return nil, err
	}
	p, err := s.Spawn(ctx, HAProxyBin(), "-db", "-f", path)
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, p); err != nil {
		p.kill()
		return nil, fmt.Errorf("ghost: %w (output: %s)", err, strings.TrimSpace(p.Output()))
	}
	return p, nil
}

func (s *Sandbox) writeGhostConfig(cfg string) (string, error) {
	s.mu.Lock()
	s.ghostN++
	path := filepath.Join(s.dir, fmt.Sprintf("ghost-%d.cfg", s.ghostN))
	s.mu.Unlock()
	return path, writeAtomic(path, cfg)
}

// StartGhostDaemon is StartGhost with `haproxy -D`: the ghost daemonizes,
// so inside the box its parent is PID 1 (systemd), like an haproxy someone
// started by hand long ago. The returned Proc has no Cmd; Done is closed
// once the ghost is gone. It is killed when t ends.
func (s *Sandbox) StartGhostDaemon(t testing.TB, cfg string) *Proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := s.SpawnGhostDaemon(ctx, cfg)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(p.kill)
	return p
}

// SpawnGhostDaemon is StartGhostDaemon without a testing.TB; the sandbox
// kills it at Close.
func (s *Sandbox) SpawnGhostDaemon(ctx context.Context, cfg string) (*Proc, error) {
	path, err := s.writeGhostConfig(cfg)
	if err != nil {
		return nil, err
	}
	pidfile := path + ".pid"
	if _, _, err := s.Run(ctx, HAProxyBin(), "-D", "-p", pidfile, "-f", path); err != nil {
		return nil, fmt.Errorf("ghost daemon: %w", err)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return nil, fmt.Errorf("ghost daemon: %w", err)
	}
	boxPID, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return nil, fmt.Errorf("ghost daemon: pidfile %s: %w", pidfile, err)
	}
	host, err := s.HostPIDOf(boxPID)
	if err != nil {
		return nil, fmt.Errorf("ghost daemon: %w", err)
	}
	p := &Proc{HostPID: host, BoxPID: boxPID, what: "ghost daemon " + path, done: make(chan struct{})}
	if p.start, err = StartTime(host); err != nil {
		return nil, fmt.Errorf("ghost daemon: %w", err)
	}
	if u, err := track(host, p.what); err == nil {
		p.untrack = append(p.untrack, u)
	}
	// Not our child: watch it until it is gone (at the latest when the box
	// goes down).
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for p.Alive() {
			<-tick.C
		}
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	if err := waitListening(ctx, p); err != nil {
		p.kill()
		return nil, fmt.Errorf("ghost daemon: %w", err)
	}
	return p, nil
}

// WaitListening waits (bounded by ctx) until p holds a listening TCP
// socket, e.g. after Start(t, copyOfHAProxy, "-db", "-f", cfg) for a ghost
// running from a since-deleted binary.
func WaitListening(ctx context.Context, p *Proc) error { return waitListening(ctx, p) }

// waitListening waits (bounded) until p holds at least one listening TCP
// socket.
func waitListening(ctx context.Context, p *Proc) error {
	for range 600 {
		if n, _ := ListeningSockets(p.HostPID); n > 0 {
			return nil
		}
		select {
		case <-p.Done():
			return errors.New("exited before listening")
		case <-ctx.Done():
			return fmt.Errorf("not listening: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return errors.New("not listening")
}

// ListeningSockets counts the TCP sockets in LISTEN state that host PID pid
// holds open (its fds matched against /proc/PID/net/tcp and tcp6).
func ListeningSockets(pid int) (int, error) {
	listen := map[string]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fl := strings.Fields(line)
			if len(fl) > 9 && fl[3] == "0A" {
				listen[fl[9]] = true
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(target, "socket:["); ok && listen[strings.TrimSuffix(ino, "]")] {
			n++
		}
	}
	return n, nil
}

// TCPProxyConfig is a minimal haproxy config: one TCP frontend on listen
// forwarding to backend. It has no chroot, no daemon and no stats socket,
// so the unit and a ghost can both run it. With "retries 0", a connection
// whose backend refuses fails at once (haproxy waits 1 s between retries),
// so a ghost pointing at DeadAddr fails probes in milliseconds.
func TCPProxyConfig(listen, backend string) string {
	return fmt.Sprintf(`global
	maxconn 256

defaults
	mode tcp
	retries 0
	timeout connect 1s
	timeout client 30s
	timeout server 30s

frontend fe_test
	bind %s
	default_backend be_test

backend be_test
	server s1 %s
`, listen, backend)
}

// writeAtomic writes data to path through a temp file in the same
// directory, fsync and rename, so a reader never sees half a file.
func writeAtomic(path, data string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// RunHAProxy starts `haproxy -db -f path` on the host, in path's
// directory, for the rest of tb, and returns once it serves: every TCP
// address of ready accepts a connection, and so does every `stats socket`
// path the config names. A frontend can take connections before haproxy
// has bound its unix sockets (3.0 has been seen to bind them a moment
// later), so a test that reads the stats socket must not start at the
// first accepted connection. The process is killed by pid when tb ends;
// its output is in the failure message if it exits early.
func RunHAProxy(tb testing.TB, path, why string, ready ...string) {
	tb.Helper()
	cfg, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(HAProxyBin(), "-db", "-f", path)
	cmd.Dir = filepath.Dir(path)
	var log SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	untrack := Track(tb, cmd.Process.Pid, why)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		untrack()
	})
	type endpoint struct{ network, addr string }
	var eps []endpoint
	for _, a := range ready {
		eps = append(eps, endpoint{"tcp", a})
	}
	for _, l := range strings.Split(string(cfg), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "stats" && f[1] == "socket" && strings.HasPrefix(f[2], "/") {
			eps = append(eps, endpoint{"unix", f[2]})
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, ep := range eps {
		for {
			c, err := net.DialTimeout(ep.network, ep.addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("testbed: haproxy (%s) does not answer on %s %s after 10 s: %v\n%s", path, ep.network, ep.addr, err, log.String())
			}
			select {
			case <-done:
				tb.Fatalf("testbed: haproxy (%s) exited: %s", path, log.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}
