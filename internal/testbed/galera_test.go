package testbed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/probe"
)

// TestGalera boots one 3-node cluster (the costly part) and checks, in
// subtests, what other tests rely on. After the cluster's cleanup it
// asserts that no node process is left.
func TestGalera(t *testing.T) {
	Require(t, TierSystem)
	var pids []int
	t.Run("cluster", func(t *testing.T) {
		g := StartGalera(t, GaleraOptions{WaitTimeouts: []int{10, 10, 28800}, Clustercheck: true})
		for _, m := range g.Nodes() {
			pids = append(pids, m.PID())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()

		t.Run("synced", func(t *testing.T) {
			if len(g.Nodes()) != 3 {
				t.Fatalf("%d nodes, want 3", len(g.Nodes()))
			}
			for i, m := range g.Nodes() {
				if s, err := g.State(ctx, i); err != nil || s != 4 {
					t.Errorf("node %d: state %d (%v), want 4", i, s, err)
				}
				if size, err := m.Status(ctx, "wsrep_cluster_size"); err != nil || size != "3" {
					t.Errorf("node %d: wsrep_cluster_size %q (%v), want 3", i, size, err)
				}
			}
		})

		t.Run("wait_timeout per node", func(t *testing.T) {
			for i, want := range []string{"10", "10", "28800"} {
				db, err := sql.Open("mysql", g.Nodes()[i].DSN(""))
				if err != nil {
					t.Fatal(err)
				}
				var got string
				err = db.QueryRowContext(ctx, "SELECT @@global.wait_timeout").Scan(&got)
				db.Close()
				if err != nil || got != want {
					t.Errorf("node %d: @@global.wait_timeout = %q (%v), want %s", i, got, err, want)
				}
			}
		})

		t.Run("replicates", func(t *testing.T) {
			n := g.Nodes()
			if err := n[0].Exec(ctx, "CREATE DATABASE IF NOT EXISTS rep"); err != nil {
				t.Fatal(err)
			}
			if err := n[0].Exec(ctx, "CREATE TABLE rep.t (id INT PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			// wsrep_sync_wait makes a statement wait until the node has
			// applied every write the cluster committed before it: the
			// insert on node 2 waits for the CREATE TABLE from node 0
			// (without it the insert raced the DDL and failed now and
			// then with 1146), the read on node 1 for the insert.
			// No default database in the DSN: it is selected at login,
			// before the session's sync wait applies.
			ins, err := sql.Open("mysql", n[2].DSN("")+"?wsrep_sync_wait=15")
			if err != nil {
				t.Fatal(err)
			}
			defer ins.Close()
			if _, err := ins.ExecContext(ctx, "INSERT INTO rep.t VALUES (42)"); err != nil {
				t.Fatalf("node 2: INSERT: %v", err)
			}
			db, err := sql.Open("mysql", n[1].DSN("")+"?wsrep_sync_wait=1")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var id int
			if err := db.QueryRowContext(ctx, "SELECT id FROM rep.t").Scan(&id); err != nil || id != 42 {
				t.Errorf("node 1 reads %d (%v), want the row node 2 wrote (42)", id, err)
			}
		})

		stats := startCheckingHAProxy(t, g)
		t.Run("desync and clustercheck", func(t *testing.T) {
			for i := range g.Nodes() {
				expectCheck(t, ctx, g.ClustercheckAddr(i), http.StatusOK, "synced")
			}
			expectServers(t, ctx, stats, "UP", "UP", "UP")
			if err := g.Desync(ctx, 1, true); err != nil {
				t.Fatal(err)
			}
			if err := g.WaitState(ctx, 1, 2); err != nil {
				t.Fatal(err)
			}
			expectCheck(t, ctx, g.ClustercheckAddr(1), http.StatusServiceUnavailable, "state 2: Donor/Desynced")
			expectCheck(t, ctx, g.ClustercheckAddr(0), http.StatusOK, "synced")
			// haproxy's option httpchk on the endpoint takes the node out.
			expectServers(t, ctx, stats, "UP", "DOWN", "UP")

			if err := g.Desync(ctx, 1, false); err != nil {
				t.Fatal(err)
			}
			if err := g.WaitState(ctx, 1, 4); err != nil {
				t.Fatal(err)
			}
			expectCheck(t, ctx, g.ClustercheckAddr(1), http.StatusOK, "synced")
			expectServers(t, ctx, stats, "UP", "UP", "UP")
		})
	})
	if len(pids) != 3 {
		t.Fatalf("cluster did not start (%d pids)", len(pids))
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("node pid %d still exists after cleanup", pid)
		}
	}
}

// expectCheck polls the clustercheck at addr until it answers want (the
// endpoint caches the state briefly), then checks the body.
func expectCheck(t *testing.T, ctx context.Context, addr string, want int, body string) {
	t.Helper()
	var last string
	for i := 0; i < 50; i++ {
		code, text, err := get(ctx, "http://"+addr+"/")
		last = fmt.Sprintf("%d %q %v", code, text, err)
		if err == nil && code == want {
			if !strings.Contains(text, body) {
				t.Errorf("clustercheck %s: body %q, want it to contain %q", addr, text, body)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("clustercheck %s: last answer %s, want status %d", addr, last, want)
}

func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// startCheckingHAProxy runs the real haproxy (a plain child process, not
// the sandbox's unit) with one TCP backend over g's nodes, each checked by
// `option httpchk` on its clustercheck port, and returns its stats socket.
func startCheckingHAProxy(t *testing.T, g *Galera) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	var servers strings.Builder
	for i, m := range g.Nodes() {
		_, port, err := net.SplitHostPort(g.ClustercheckAddr(i))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&servers, "    server g%d %s check port %s inter 200ms fall 2 rise 2\n", i, m.Addr(), port)
	}
	cfg := fmt.Sprintf(`global
    stats socket %s level admin
defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
listen galera
    bind 127.0.0.1:%d
    option httpchk
%s`, sock, FreePort(t), servers.String())
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(HAProxyBin(), "-db", "-f", path)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	untrack := Track(t, cmd.Process.Pid, "haproxy checking galera")
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err := waitGone(cmd.Process.Pid); err != nil {
			t.Errorf("haproxy: %v", err)
			return
		}
		untrack()
	})
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("haproxy made no stats socket; output:\n%s", out.String())
	return ""
}

// expectServers polls haproxy's show stat until servers g0, g1... have the
// given statuses.
func expectServers(t *testing.T, ctx context.Context, sock string, want ...string) {
	t.Helper()
	var last string
	for i := 0; i < 100; i++ {
		h, err := probe.ReadStats(ctx, sock)
		got := map[string]probe.ServerStatus{}
		for _, s := range h.Servers {
			if s.Backend == "galera" {
				got[s.Server] = s
			}
		}
		match := err == nil
		var parts []string
		for j, w := range want {
			s := got[fmt.Sprintf("g%d", j)]
			parts = append(parts, fmt.Sprintf("g%d=%s/%s/%d", j, s.Status, s.CheckStatus, s.CheckCode))
			match = match && s.Status == w
		}
		last = fmt.Sprintf("%s (err %v)", strings.Join(parts, " "), err)
		if match {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("haproxy show stat: %s; want %v", last, want)
}

// A node that dies after it joined is noticed at once by the next
// membership wait, with its log, instead of after the wait's timeout.
func TestGaleraWaitMembersSeesAnyNodeDie(t *testing.T) {
	Require(t, TierSystem)
	g := StartGalera(t, GaleraOptions{Nodes: 2})
	m := g.Nodes()[1]
	if err := m.cmd.Process.Kill(); err != nil { // a node of this test, by its PID
		t.Fatal(err)
	}
	<-m.done
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Before, only the newest node was watched: this wait ran into ctx's
	// deadline and said only "cluster size".
	err := g.waitMembers(ctx, 3)
	if err == nil || !strings.Contains(err.Error(), "galera1 exited while 3 members were awaited") || !strings.Contains(err.Error(), "last lines of") {
		t.Fatalf("waitMembers: %v", err)
	}
}
