package testbed

import (
	"context"
	"database/sql"
	"database/sql/driver"
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

	"github.com/go-sql-driver/mysql"
)

// Credentials of the TCP users every test server has. They exist only on
// throw-away servers bound to 127.0.0.1.
const (
	mariaUser      = "haguard"
	mariaPassword  = "haguard-secret"
	probeUser      = "probe"
	probePassword  = "probe-secret"
	defaultTimeout = 28800 // MariaDB's default wait_timeout and interactive_timeout
)

// How long a server may take to come up, and to go down on SIGTERM before
// it gets SIGKILL. Generous bounds, not expectations: a healthy single
// server is ready in about a second.
const (
	mariaStartTimeout = 60 * time.Second
	mariaStopTimeout  = 30 * time.Second
)

// MariaDBOptions configures one test server.
type MariaDBOptions struct {
	// WaitTimeout and InteractiveTimeout are the server's idle timeouts in
	// seconds; 0 means MariaDB's default, 28800.
	WaitTimeout, InteractiveTimeout int
	// ExtraArgs are appended to the mariadbd command line.
	ExtraArgs []string
}

// MariaDB is a mariadbd started by a test: a child of the test process,
// listening on 127.0.0.1 with its own data directory, socket and logs in a
// per-test run directory. It never touches the host's server.
type MariaDB struct {
	name string
	dir  string
	port int

	cmd     *exec.Cmd
	done    chan struct{} // closed once the process is reaped
	waitErr error         // set before done is closed
	untrack func()

	root *sql.DB // root over the unix socket, for Exec and readiness

	stopOnce sync.Once
}

// nodeConfig is what StartMariaDB and StartGalera share: where a server
// lives and the my.cnf lines that make it what it is.
type nodeConfig struct {
	name    string
	dir     string
	port    int
	opts    MariaDBOptions
	cnf     []string // extra [mysqld] lines
	tail    string   // extra sections appended to my.cnf
	args    []string // extra command-line arguments before opts.ExtraArgs
	env     []string // extra environment
	install bool     // run mariadb-install-db first
}

// StartMariaDB starts a fresh MariaDB server for t and returns once it
// accepts a root login and the test users exist. t.Cleanup stops it
// (SIGTERM, then SIGKILL) and fails t if its PID is still alive.
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	Require(t, TierSystem)
	var m *MariaDB
	var err error
	// FreePort's port was free a moment ago; if another test took it since,
	// start again on a new one.
	for attempt := 1; ; attempt++ {
		m, err = startNode(t, nodeConfig{
			name: "mariadb", dir: RunDir(t), port: FreePort(t), opts: opts, install: true,
		})
		if m != nil {
			t.Cleanup(func() { m.stop(t) })
		}
		if err == nil || attempt == 3 || m == nil || !m.portTaken() {
			break
		}
		t.Logf("testbed: mariadb: port %d was taken meanwhile; retrying", m.port)
		m.stop(t)
	}
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mariaStartTimeout)
	defer cancel()
	if err := m.createUsers(ctx); err != nil {
		t.Fatalf("testbed: %s: %v%s", m.name, err, m.logTail())
	}
	return m
}

// startNode launches a server and waits until root can log in over the
// socket. On error the returned *MariaDB (when not nil) still needs stop.
func startNode(t testing.TB, c nodeConfig) (*MariaDB, error) {
	t.Helper()
	m, err := launchNode(t, c)
	if err != nil {
		return m, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), mariaStartTimeout)
	defer cancel()
	return m, m.waitReady(ctx)
}

// launchNode writes my.cnf, initialises the data directory when asked and
// starts mariadbd without waiting for it. On error the returned *MariaDB
// (when not nil) still needs stop.
func launchNode(t testing.TB, c nodeConfig) (*MariaDB, error) {
	t.Helper()
	m := &MariaDB{name: c.name, dir: c.dir, port: c.port, done: make(chan struct{})}
	for _, d := range []string{m.dataDir(), m.path("tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	if err := os.WriteFile(m.cnfPath(), []byte(m.myCnf(c)), 0o644); err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	if c.install {
		if err := installDataDir(m.dataDir()); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}

	args := append([]string{"--defaults-file=" + m.cnfPath(), "--user=root"}, c.args...)
	args = append(args, c.opts.ExtraArgs...)
	cmd := exec.Command("/usr/sbin/mariadbd", args...)
	cmd.Dir = c.dir
	cmd.Env = append([]string{
		"PATH=" + m.path("bin") + ":/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + c.dir,
		"TMPDIR=" + m.path("tmp"),
	}, c.env...)
	out, err := os.Create(m.path("stdout.log"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: SST scripts and their rsync daemons are in it and
	// go with it. Pdeathsig ends the server if the test process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start mariadbd: %w", c.name, err)
	}
	m.cmd = cmd
	m.untrack = Track(t, cmd.Process.Pid, c.name+" mariadbd "+c.dir)
	go func() {
		m.waitErr = cmd.Wait()
		close(m.done)
	}()

	m.root = sql.OpenDB(mustConnector(m.rootConfig()))
	m.root.SetMaxOpenConns(4)
	// Servers here may run with wait_timeout=10: never reuse a connection
	// the server may already have closed.
	m.root.SetConnMaxIdleTime(time.Second)
	return m, nil
}

func (m *MariaDB) myCnf(c nodeConfig) string {
	wt, it := c.opts.WaitTimeout, c.opts.InteractiveTimeout
	if wt == 0 {
		wt = defaultTimeout
	}
	if it == 0 {
		it = defaultTimeout
	}
	lines := []string{
		"# written by internal/testbed; read with --defaults-file only",
		"[mysqld]",
		"datadir=" + m.dataDir(),
		"socket=" + m.socket(),
		"pid-file=" + m.path("mariadbd.pid"),
		"log-error=" + m.path("error.log"),
		"tmpdir=" + m.path("tmp"),
		fmt.Sprintf("port=%d", m.port),
		"bind-address=127.0.0.1",
		"skip-name-resolve",
		fmt.Sprintf("wait_timeout=%d", wt),
		fmt.Sprintf("interactive_timeout=%d", it),
		"performance_schema=OFF",
		"max_connections=500",
		// Probes open and drop many connections without logging in; never
		// let that block 127.0.0.1 (error 1129) in the middle of a test.
		"max_connect_errors=1000000",
	}
	// Small footprint (tests hold a handful of rows), the same values the
	// data dir template was made with.
	lines = append(lines, installCnf...)
	lines = append(lines, c.cnf...)
	lines = append(lines, "", "[client]", "socket="+m.socket(), "user=root", "")
	return strings.Join(lines, "\n") + c.tail
}

func (m *MariaDB) rootConfig() *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = m.socket()
	cfg.Timeout = 5 * time.Second
	return cfg
}

func mustConnector(cfg *mysql.Config) driver.Connector {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		panic(err) // only on a malformed static config: a bug here
	}
	return c
}

// waitReady polls until root can log in, the process dies, or ctx ends.
func (m *MariaDB) waitReady(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = m.root.PingContext(pctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-m.done:
			return fmt.Errorf("%s: mariadbd exited while starting: %v%s", m.name, m.waitErr, m.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready: %w (last: %v)%s", m.name, ctx.Err(), last, m.logTail())
		case <-tick.C:
		}
	}
}

func (m *MariaDB) createUsers(ctx context.Context) error {
	for _, q := range []string{
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", mariaUser, mariaPassword),
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'localhost' IDENTIFIED BY '%s'", mariaUser, mariaPassword),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%' WITH GRANT OPTION", mariaUser),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'localhost' WITH GRANT OPTION", mariaUser),
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", probeUser, probePassword),
	} {
		if err := m.Exec(ctx, q); err != nil {
			return fmt.Errorf("create test users: %w", err)
		}
	}
	return nil
}

// stop ends the server: SIGTERM, then SIGKILL after mariaStopTimeout, then
// SIGKILL to whatever is left in its process group (SST helpers). It fails
// t when the PID or the group outlives that.
func (m *MariaDB) stop(t testing.TB) {
	t.Helper()
	m.stopOnce.Do(func() { m.stopNow(t) })
}

func (m *MariaDB) stopNow(t testing.TB) {
	t.Helper()
	if m.root != nil {
		m.root.Close()
	}
	if m.cmd == nil {
		return
	}
	pid := m.cmd.Process.Pid
	select {
	case <-m.done:
	default:
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(mariaStopTimeout):
			t.Logf("testbed: %s (pid %d) ignored SIGTERM for %s; sending SIGKILL", m.name, pid, mariaStopTimeout)
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	}
	// The group id is our reaped child's PID; Linux hands out no PID that
	// still names a live group, so this reaches only its leftovers.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if err := waitGone(pid); err != nil {
		t.Errorf("testbed: %s: %v", m.name, err)
		return
	}
	m.untrack()
}

// waitGone waits briefly for the process and process group pid to vanish.
func waitGone(pid int) error {
	for i := 0; i < 100; i++ {
		_, statErr := os.Stat(fmt.Sprintf("/proc/%d", pid))
		groupErr := syscall.Kill(-pid, 0)
		if errors.Is(statErr, os.ErrNotExist) && errors.Is(groupErr, syscall.ESRCH) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("pid %d or its process group is still alive after stop", pid)
}

// Addr is the server's TCP address, "127.0.0.1:port".
func (m *MariaDB) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }

// Port is the server's TCP port.
func (m *MariaDB) Port() int { return m.port }

// DSN is a go-sql-driver/mysql DSN for the haguard TCP user (all
// privileges), with db as the default database ("" for none).
func (m *MariaDB) DSN(db string) string { return m.dsnFor(mariaUser, mariaPassword, db) }

// ProbeDSN is like DSN for the probe user, which may log in and do nothing
// else.
func (m *MariaDB) ProbeDSN(db string) string { return m.dsnFor(probeUser, probePassword, db) }

func (m *MariaDB) dsnFor(user, password, db string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = user, password
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", m.Addr(), db
	return cfg.FormatDSN()
}

// User returns the haguard TCP user and its password.
func (m *MariaDB) User() (user, password string) { return mariaUser, mariaPassword }

// ProbeUser returns the unprivileged probe user and its password.
func (m *MariaDB) ProbeUser() (user, password string) { return probeUser, probePassword }

// Exec runs one statement as root over the unix socket.
func (m *MariaDB) Exec(ctx context.Context, query string) error {
	if _, err := m.root.ExecContext(ctx, query); err != nil {
		return fmt.Errorf("%s: %s: %w", m.name, query, err)
	}
	return nil
}

// Global returns the value of a global variable (@@global.name) as text.
func (m *MariaDB) Global(ctx context.Context, name string) (string, error) {
	if !isIdent(name) {
		return "", fmt.Errorf("%s: @@global.%q: not a variable name", m.name, name)
	}
	var v sql.NullString
	if err := m.root.QueryRowContext(ctx, "SELECT @@global."+name).Scan(&v); err != nil {
		return "", fmt.Errorf("%s: @@global.%s: %w", m.name, name, err)
	}
	return v.String, nil
}

// Status returns the value of a global status variable (SHOW GLOBAL
// STATUS), or an error when the server has no such variable.
func (m *MariaDB) Status(ctx context.Context, name string) (string, error) {
	if !isIdent(name) {
		return "", fmt.Errorf("%s: status %q: not a variable name", m.name, name)
	}
	var k, v string
	err := m.root.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE '"+name+"'").Scan(&k, &v)
	if err != nil {
		return "", fmt.Errorf("%s: status %s: %w", m.name, name, err)
	}
	return v, nil
}

// PID is the host PID of mariadbd.
func (m *MariaDB) PID() int { return m.cmd.Process.Pid }

// Dir is the server's run directory (data, socket, my.cnf, logs).
func (m *MariaDB) Dir() string { return m.dir }

// Socket is the path of the server's unix socket (root may log in there
// without a password).
func (m *MariaDB) Socket() string { return m.socket() }

// DefaultsFile is the server's my.cnf; its [client] section logs in as root
// over the socket, as `mariadb --defaults-file=...` or clustercheck read it.
func (m *MariaDB) DefaultsFile() string { return m.cnfPath() }

// ErrorLog is the path of the server's error log.
func (m *MariaDB) ErrorLog() string { return m.path("error.log") }

func (m *MariaDB) path(name string) string { return filepath.Join(m.dir, name) }
func (m *MariaDB) dataDir() string         { return m.path("data") }
func (m *MariaDB) socket() string          { return m.path("mariadbd.sock") }
func (m *MariaDB) cnfPath() string         { return m.path("my.cnf") }

// portTaken reports whether the server died because its TCP port was in
// use.
func (m *MariaDB) portTaken() bool {
	select {
	case <-m.done:
	default:
		return false
	}
	b, _ := os.ReadFile(m.ErrorLog())
	return strings.Contains(string(b), "Address already in use")
}

// logTail is the end of the error log, for failure messages.
func (m *MariaDB) logTail() string {
	b, err := os.ReadFile(m.ErrorLog())
	if err != nil {
		return fmt.Sprintf("\n(no error log: %v)", err)
	}
	return fmt.Sprintf("\n--- last lines of %s ---\n%s", m.ErrorLog(), lastLines(string(b), 30))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// isIdent reports whether s is a plain variable name, safe to splice into
// a statement (SHOW STATUS takes no placeholders).
func isIdent(s string) bool {
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}
