package testbed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestStartMariaDB boots one server and checks what other tests rely on:
// the TCP users log in, the idle timeouts are the ones asked for, and the
// process is gone after cleanup.
func TestStartMariaDB(t *testing.T) {
	Require(t, TierSystem)
	var pid int
	t.Run("server", func(t *testing.T) {
		m := StartMariaDB(t, MariaDBOptions{WaitTimeout: 7, InteractiveTimeout: 9})
		pid = m.PID()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()

		db, err := sql.Open("mysql", m.DSN(""))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var user string
		if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&user); err != nil {
			t.Fatalf("login as %s over TCP: %v", m.DSN(""), err)
		}
		if user != "haguard@%" {
			t.Errorf("CURRENT_USER() = %q, want haguard@%%", user)
		}
		if _, err := db.ExecContext(ctx, "CREATE DATABASE t1"); err != nil {
			t.Errorf("haguard user cannot create a database: %v", err)
		}

		for name, want := range map[string]string{"wait_timeout": "7", "interactive_timeout": "9", "bind_address": "127.0.0.1"} {
			got, err := m.Global(ctx, name)
			if err != nil || got != want {
				t.Errorf("@@global.%s = %q, %v; want %q", name, got, err, want)
			}
		}

		probe, err := sql.Open("mysql", m.ProbeDSN(""))
		if err != nil {
			t.Fatal(err)
		}
		defer probe.Close()
		if err := probe.PingContext(ctx); err != nil {
			t.Errorf("probe user cannot log in: %v", err)
		}
		_, err = probe.ExecContext(ctx, "CREATE DATABASE t2")
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1044 {
			t.Errorf("probe user CREATE DATABASE: %v, want error 1044 (access denied)", err)
		}

		wrong, _ := sql.Open("mysql", "haguard:wrong@tcp("+m.Addr()+")/")
		defer wrong.Close()
		err = wrong.PingContext(ctx)
		if !errors.As(err, &me) || me.Number != 1045 {
			t.Errorf("wrong password: %v, want error 1045", err)
		}

		if err := m.Exec(ctx, "SELECT 1"); err != nil {
			t.Errorf("Exec: %v", err)
		}
	})
	if pid == 0 {
		t.Fatal("server never started")
	}
	if _, err := os.Stat("/proc/" + itoa(pid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mariadbd pid %d still exists after cleanup", pid)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// StartMariaDB retries when its port was taken between FreePort and the
// bind; that needs portTaken to recognise such a failure.
func TestPortTakenIsRecognised(t *testing.T) {
	Require(t, TierSystem)
	m := StartMariaDB(t, MariaDBOptions{})
	// The same port again: the server must fail to bind and say so.
	dup, err := startNode(t, nodeConfig{name: "dup", dir: RunDir(t), port: m.Port(), install: true})
	if dup != nil {
		defer dup.stop(t)
	}
	if err == nil {
		t.Fatal("a second server started on a taken port")
	}
	if !dup.portTaken() {
		t.Errorf("portTaken() = false for a server that could not bind; error: %v", err)
	}
}

// A test process that dies without running its cleanups (a crash, a
// timeout's panic, kill -9) must not leave its server behind: mariadbd
// gets SIGKILL when its parent dies (Pdeathsig), and Track's record lets
// the next run reap it otherwise. The crash is played by this test binary,
// run again as a child that starts a server and exits at once.
func TestMariaDBDiesWithCrashedTestProcess(t *testing.T) {
	if os.Getenv("HAGUARD_TESTBED_CRASH_CHILD") == "1" {
		m := StartMariaDB(t, MariaDBOptions{})
		st, _ := StartTime(m.PID())
		fmt.Printf("mariadbd-pid=%d\nrecord=%d-%d\ndir=%s\n", m.PID(), m.PID(), st, m.Dir())
		os.Exit(0) // no cleanup runs
	}
	Require(t, TierSystem)
	cmd := exec.Command(os.Args[0], "-test.run=^TestMariaDBDiesWithCrashedTestProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HAGUARD_TESTBED_CRASH_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var pid int
	var record, dir string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "mariadbd-pid="); ok {
			pid, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(line, "record="); ok {
			record = filepath.Join(StateRoot(), "procs", v)
		}
		if v, ok := strings.CutPrefix(line, "dir="); ok && strings.HasPrefix(v, StateRoot()+"/runs/") {
			dir = v
		}
	}
	// What the next run's ReapLeftovers would remove, removed now.
	defer func() {
		if record != "" {
			os.Remove(record)
		}
		if dir != "" {
			os.RemoveAll(dir)
		}
	}()
	if _, err := os.Stat(record); err != nil {
		t.Errorf("the crashed run left no record for the next run to reap (%q): %v", record, err)
	}
	if pid == 0 {
		t.Fatalf("child printed no mariadbd pid:\n%s", out)
	}
	if err := waitGone(pid); err != nil {
		t.Errorf("mariadbd of a crashed test process: %v", err)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
