// Command demo is `make demo`: it boots the test bed's sandbox (a real
// systemd running Debian's haproxy.service), puts haproxy in front of a
// MariaDB server, leaves a ghost haproxy behind with an old config, shows
// the symptom of seed 003 (a connect loop that mixes OK and FAIL), runs
// whatever haguard commands exist, and checks the repair. It exits
// non-zero when the story does not hold.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

func main() {
	testing.Init() // testbed.Require reads testing.Short
	fs := flag.CommandLine
	haguard := fs.String("haguard", "bin/haguard", "haguard binary to run inside the sandbox")
	backend := fs.String("backend", "mariadb", "what haproxy fronts: mariadb or tcp (a greeting echo server)")
	attempts := fs.Int("n", 40, "connect-loop attempts per round")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Stdout, *haguard, *backend, *attempts))
}

type story struct {
	t        *script
	out      io.Writer
	broken   []string
	attempts int
}

func (st *story) say(format string, args ...any) { fmt.Fprintf(st.out, format+"\n", args...) }
func (st *story) step(format string, args ...any) {
	fmt.Fprintf(st.out, "\n== "+format+"\n", args...)
}

// breaks records that the story did not hold.
func (st *story) breaks(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	st.broken = append(st.broken, msg)
	st.say("   !! %s", msg)
}

func run(ctx context.Context, out io.Writer, haguardPath, backendKind string, attempts int) (code int) {
	t := &script{ctx: ctx, out: out}
	st := &story{t: t, out: out, attempts: attempts}
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(abort)
			if !ok {
				t.cleanup()
				panic(r)
			}
			st.breaks("aborted: %s", a.msg)
		}
		st.step("Cleaning up")
		t.cleanup()
		if t.failed {
			st.broken = append(st.broken, "clean-up reported an error")
		}
		if len(st.broken) > 0 {
			st.say("\nThe story did NOT hold:\n  - %s", strings.Join(st.broken, "\n  - "))
			code = 1
			return
		}
		st.say("\nThe story held: a ghost haproxy split the traffic, haguard saw it, and the repair left every connection OK.")
	}()
	haguardPath, err := filepath.Abs(haguardPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(haguardPath); err != nil {
		t.Fatalf("haguard binary: %v (run `make build` or pass -haguard)", err)
	}
	// The box sees the host's /usr and /var but not its /tmp: copy the
	// binary into the shared run directory so both sides can run it.

	st.step("Booting a real systemd in a sandbox")
	began := time.Now()
	s := testbed.Boot(t)
	st.say("systemd is PID 1 of its own PID/mount/cgroup namespaces (host PID %d), up in %s.",
		s.HostPID(), time.Since(began).Round(10*time.Millisecond))
	st.say("Its /tmp, /run and /dev are private: nothing it does touches the host's /tmp.")
	bin := filepath.Join(s.Dir(), "haguard")
	if err := copyFile(haguardPath, bin); err != nil {
		t.Fatal(err)
	}

	st.step("Starting the backend")
	addr, expect := st.startBackend(backendKind)

	st.step("Starting haproxy.service (Debian's unit, master-worker, Type=notify)")
	front := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	s.StartHAProxy(t, unitConfig(front, addr))
	st.say("haproxy.service is active; frontend %s -> backend %s; config %s.", front, addr, s.HAProxyConfig())
	st.loop("Connect loop through haproxy", front, expect, func(ok, fail int) {
		if fail != 0 {
			st.breaks("the healthy proxy already failed %d of %d connections", fail, ok+fail)
		}
	})

	st.step("Leaving a ghost behind")
	st.say("Someone once ran haproxy by hand with an old config (its backend has since moved).")
	ghost := s.StartGhost(t, ghostConfig(front, testbed.DeadAddr(t)))
	st.say("The ghost is box PID %d (host PID %d), outside haproxy.service's cgroup, bound to the same", ghost.BoxPID, ghost.HostPID)
	st.say("address with SO_REUSEPORT: the kernel now splits new connections between it and the unit.")
	st.say("systemctl still says: %s", strings.TrimSpace(mustOut(s.Systemctl(ctx, "is-active", "haproxy.service"))))
	st.loop("The seed's symptom", front, expect, func(ok, fail int) {
		if ok == 0 || fail == 0 {
			st.breaks("a ghost on the same port should mix OK and FAIL, got OK=%d FAIL=%d", ok, fail)
		}
	})

	st.step("Asking haguard (running inside the box, as in production)")
	cmds := st.haguardCommands(s, bin)
	cfgFile := filepath.Join(s.Dir(), "haguard.yaml")
	if err := os.WriteFile(cfgFile, []byte(haguardYAML(s)), 0o644); err != nil {
		t.Fatal(err)
	}
	hg := func(args ...string) int {
		return st.runHaguard(s, append([]string{bin, "--config-file", cfgFile}, args...))
	}
	if cmds["check"] {
		hg("check")
	}
	if cmds["ghosts"] {
		if rc := hg("ghosts"); rc != 1 {
			st.breaks("haguard ghosts exited %d with a ghost running, want 1", rc)
		}
	}
	if cmds["probe"] {
		// A bare TCP connect succeeds on the ghost too (it accepts, then
		// fails to reach its backend): probe what a client expects.
		args := []string{"probe", "--stats-socket", "none", "--kind", "tcp", "--expect", "^hello"}
		if backendKind == "mariadb" {
			args = []string{"probe", "--stats-socket", "none", "--kind", "mysql"}
		}
		if rc := hg(args...); rc != 1 {
			st.breaks("haguard probe exited %d with a ghost splitting the traffic, want 1", rc)
		}
	}

	st.step("Repairing")
	if cmds["reload"] {
		// The runbook's command as an operator types it: no --force.
		if rc := hg("reload", "--kill-ghosts", "--reason", "make demo"); rc != 0 {
			st.breaks("haguard reload --kill-ghosts exited %d, want 0", rc)
		}
	} else {
		st.say("haguard has no reload command yet: killing the ghost by hand (what `haguard reload --kill-ghosts` will do).")
		ghost.Kill()
	}
	select {
	case <-ghost.Done():
		st.say("The ghost (box PID %d) is gone.", ghost.BoxPID)
	case <-time.After(15 * time.Second):
		st.breaks("the ghost (box PID %d) is still running after the repair", ghost.BoxPID)
	}
	st.loop("Connect loop after the repair", front, expect, func(ok, fail int) {
		if fail != 0 {
			st.breaks("after the repair %d of %d connections still failed", fail, ok+fail)
		}
	})
	return 0
}

// startBackend starts MariaDB (or the greeting echo server) and returns its
// address and the first bytes every healthy connection receives.
func (st *story) startBackend(kind string) (addr, expect string) {
	t := st.t
	if kind == "mariadb" {
		m := testbed.StartMariaDB(t, testbed.MariaDBOptions{
			// The demo opens and drops hundreds of connections without
			// logging in; keep MariaDB from blocking 127.0.0.1 for it.
			ExtraArgs: []string{"--max-connect-errors=1000000"},
		})
		greeting, err := firstBytes(m.Addr(), 5)
		if err != nil {
			t.Fatalf("mariadb greeting: %v", err)
		}
		st.say("MariaDB on %s (data in %s). A healthy connection starts with its v10 handshake.", m.Addr(), m.Dir())
		return m.Addr(), greeting
	}
	addr = testbed.TCPBackend(t)
	st.say("A TCP server on %s that greets every connection with %q.", addr, testbed.Greeting)
	return addr, testbed.Greeting
}

// loop runs the connect loop and prints it the way seed 003 did.
func (st *story) loop(title, addr, expect string, judge func(ok, fail int)) {
	ok, fail := testbed.ConnectLoop(st.t.ctx, addr, st.attempts, expect)
	st.say("%s: %d connections to %s -> OK: %d / FAIL: %d", title, ok+fail, addr, ok, fail)
	judge(ok, fail)
}

// haguardCommands lists the subcommands `haguard --help` offers.
func (st *story) haguardCommands(s *testbed.Sandbox, bin string) map[string]bool {
	help, _, err := s.Run(st.t.ctx, bin, "--help")
	if err != nil {
		st.t.Fatalf("haguard --help in the box: %v", err)
	}
	cmds := map[string]bool{}
	in := false
	var names []string
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(line, "Available Commands:"):
			in = true
		case in && strings.TrimSpace(line) == "":
			in = false
		case in:
			if f := strings.Fields(line); len(f) > 0 {
				cmds[f[0]] = true
				names = append(names, f[0])
			}
		}
	}
	st.say("haguard offers: %s", strings.Join(names, ", "))
	return cmds
}

// runHaguard runs haguard inside the box and prints its output, indented
// and cut to a screenful. It returns the exit code.
func (st *story) runHaguard(s *testbed.Sandbox, argv []string) int {
	ctx, cancel := context.WithTimeout(st.t.ctx, 3*time.Minute)
	defer cancel()
	stdout, stderr, err := s.Run(ctx, argv...)
	rc := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		rc = ee.ExitCode()
	} else if err != nil {
		st.t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	st.say("$ haguard %s   (exit %d)", strings.Join(argv[3:], " "), rc)
	st.say("%s", indent(clip(stdout+stderr, 30)))
	return rc
}

// unitConfig is the current config: the frontend, MariaDB behind it, and
// the stats socket haguard reads.
func unitConfig(front, backend string) string {
	return fmt.Sprintf(`global
	maxconn 256
	stats socket /run/haproxy/admin.sock mode 660 level admin

defaults
	mode tcp
	retries 0
	timeout connect 1s
	timeout client 30s
	timeout server 30s

frontend fe_db
	bind %s
	default_backend be_db

backend be_db
	server db1 %s check
`, front, backend)
}

// ghostConfig is the old config: same frontend, the backend's old address.
func ghostConfig(front, oldBackend string) string {
	return testbed.TCPProxyConfig(front, oldBackend)
}

// haguardYAML points haguard at the box's config and keeps its state in
// the run directory (the box shares the host's /var).
func haguardYAML(s *testbed.Sandbox) string {
	return fmt.Sprintf(`haproxy:
  configs: [%s]
state_dir: %s
`, s.HAProxyConfig(), filepath.Join(s.Dir(), "state"))
}

func firstBytes(addr string, n int) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		return "", err
	}
	return string(b), nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

func mustOut(s string, _ error) string { return s }

func clip(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = append(l[:lines], fmt.Sprintf("… (%d more lines)", len(l)-lines))
	}
	return strings.Join(l, "\n")
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
