package testbed

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestStartMariaDB boots one server and checks what other tests rely on:
// the TCP users log in, the idle timeouts are the ones asked for, and the
// process is gone after cleanup.
func TestStartMariaDB(t *testing.T) {
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
