package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

func TestClustercheckUsageErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "haguard.yaml")
	if err := os.WriteFile(empty, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dsn := "probe:pw@tcp(127.0.0.1:1)/"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"clustercheck", "--dsn", dsn, "--defaults-file", "x.cnf"}, "exclude each other"},
		{[]string{"clustercheck", "--dsn", "probe:pw@tcp(127.0.0.1:1"}, "--dsn"},
		{[]string{"clustercheck", "--defaults-file", filepath.Join(dir, "missing.cnf")}, "missing.cnf"},
		{[]string{"clustercheck", "--config-file", empty}, "no login"},
		{[]string{"clustercheck", "--dsn", dsn, "--listen", taken.Addr().String()}, "--listen"},
		{[]string{"clustercheck", "--dsn", dsn, "--cache", "-1s"}, "--cache"},
		{[]string{"clustercheck", "--dsn", dsn, "extra"}, "unknown command"},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tc.args, io.Discard, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), exitUsage, tc.want)
			}
		})
	}
}

// serveClustercheck runs `haguard clustercheck --listen 127.0.0.1:0 args...`
// until the returned stop is called, which returns the exit code.
func serveClustercheck(t *testing.T, args ...string) (addr string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testbed.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"clustercheck", "--listen", "127.0.0.1:0"}, args...), io.Discard, &stderr)
	}()
	re := regexp.MustCompile(`msg="clustercheck listening".* addr=(127\.0\.0\.1:\d+)`)
	for i := 0; i < 200; i++ {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("clustercheck exited %d before listening: %s", code, stderr.String())
		case <-time.After(25 * time.Millisecond):
		}
	}
	if addr == "" {
		cancel()
		t.Fatalf("clustercheck never logged its address: %s", stderr.String())
	}
	return addr, func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("clustercheck did not stop after its context ended")
			return -1
		}
	}
}

func getCheck(t *testing.T, addr string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, "http://"+addr+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestClustercheckRefusedDatabase(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	addr, stop := serveClustercheck(t, "--dsn", "probe:pw@tcp("+dead+")/")
	code, body := getCheck(t, addr)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Errorf("got %d %q, want 503 naming the refused connection", code, body)
	}
	if exit := stop(); exit != exitOK {
		t.Errorf("exit %d after a clean stop, want %d", exit, exitOK)
	}
}

// Against a real MariaDB without Galera, through the server's own my.cnf
// (root over the socket): 503, not a Galera node. The Synced/Desynced
// verdicts against real Galera are in internal/testbed's TestGalera, which
// serves the same agent/clustercheck code per node.
func TestClustercheckRealMariaDB(t *testing.T) {
	m := testbed.StartMariaDB(t, testbed.MariaDBOptions{})
	addr, stop := serveClustercheck(t, "--defaults-file", m.DefaultsFile(), "--cache", "0s")
	code, body := getCheck(t, addr)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not a Galera node") {
		t.Errorf("got %d %q, want 503: not a Galera node", code, body)
	}
	if exit := stop(); exit != exitOK {
		t.Errorf("exit %d after a clean stop, want %d", exit, exitOK)
	}
}
