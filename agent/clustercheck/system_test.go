package clustercheck_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/haguard/haguard/agent/clustercheck"
	"github.com/haguard/haguard/internal/testbed"
)

// Against a real MariaDB without Galera, the state read reports
// ErrNotGalera, whether the login comes from a DSN, a TCP defaults file or
// the server's own my.cnf (root over the socket). Galera itself is covered
// by internal/testbed's TestGalera, which serves this package per node.
func TestRealMariaDBIsNotGalera(t *testing.T) {
	m := testbed.StartMariaDB(t, testbed.MariaDBOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	user, pass := m.ProbeUser()
	cnf := filepath.Join(t.TempDir(), "check.cnf")
	text := fmt.Sprintf("[client]\nuser=%s\npassword=%s\nhost=127.0.0.1\nport=%d\n", user, pass, m.Port())
	if err := os.WriteFile(cnf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	configs := map[string]func() (*mysql.Config, error){
		"dsn":           func() (*mysql.Config, error) { return clustercheck.ParseDSN(m.ProbeDSN("")) },
		"defaults file": func() (*mysql.Config, error) { return clustercheck.ReadDefaultsFile(cnf) },
		"socket":        func() (*mysql.Config, error) { return clustercheck.ReadDefaultsFile(m.DefaultsFile()) },
	}
	for name, load := range configs {
		t.Run(name, func(t *testing.T) {
			cfg, err := load()
			if err != nil {
				t.Fatal(err)
			}
			db, err := clustercheck.OpenDB(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, err = clustercheck.DBSource{DB: db}.LocalState(ctx)
			if !errors.Is(err, clustercheck.ErrNotGalera) {
				t.Errorf("LocalState: %v, want ErrNotGalera", err)
			}
		})
	}
}

// A database that refuses connections gives 503 with the reason.
func TestRefusedDatabaseIs503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg, err := clustercheck.ParseDSN("probe:pw@tcp(" + addr + ")/")
	if err != nil {
		t.Fatal(err)
	}
	db, err := clustercheck.OpenDB(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(clustercheck.NewChecker(clustercheck.DBSource{DB: db}, clustercheck.Options{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "connection refused") {
		t.Errorf("got %d %q, want 503 naming the refused connection", resp.StatusCode, body)
	}
}
