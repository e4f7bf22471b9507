package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
)

// TestSystemProbe runs the probes against the real thing: Debian's
// haproxy.service in the sandbox in front of real MariaDB servers, then a
// ghost haproxy on the same port pointing at a dead backend (seed 003).
func TestSystemProbe(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	long := testbed.StartMariaDB(t, testbed.MariaDBOptions{WaitTimeout: 30})
	short := testbed.StartMariaDB(t, testbed.MariaDBOptions{WaitTimeout: 3})
	s := testbed.Boot(t)

	front := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	frontShort := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	frontCut := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	sock := filepath.Join(s.Dir(), "admin.sock")
	s.StartHAProxy(t, fmt.Sprintf(`global
	maxconn 256
	stats socket %s mode 600 level admin

defaults
	mode tcp
	retries 0
	timeout connect 1s
	timeout client 30s
	timeout server 30s
	timeout check 1s

listen galera
	bind %s
	option mysql-check
	server db1 %s check inter 200ms

listen galera_short_wait
	bind %s
	option mysql-check
	server db1 %s check inter 200ms

listen galera_proxy_cut
	bind %s
	timeout server 5s
	server db1 %s
`, sock, front, long.Addr(), frontShort, short.Addr(), frontCut, long.Addr()))
	user, password := long.ProbeUser()

	run := func(t *testing.T, targets ...Target) Report {
		t.Helper()
		socks, err := ListenSockets(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return Run(context.Background(), targets, Options{Timeout: 3 * time.Second, ListenerCount: ListenerCounter(socks)})
	}

	t.Run("clean path: every attempt OK", func(t *testing.T) {
		rep := run(t,
			Target{Address: front, Kind: KindMySQL},
			Target{Address: front, Kind: KindMySQL, User: user, Password: password},
			Target{Address: front, Kind: KindMySQL, User: user, Password: "wrong"}, // 1045: the path works
		)
		for _, tr := range rep.Targets {
			if tr.OK != tr.AttemptsTotal || tr.AttemptsTotal < DefaultMinCount {
				t.Errorf("%s: %d/%d OK, errors %v", tr.Target, tr.OK, tr.AttemptsTotal, tr.Errors)
			}
			if v := tr.Attempts[0].ServerVersion; !strings.Contains(v, "MariaDB") {
				t.Errorf("server version %q", v)
			}
		}
		if n := rep.Targets[2].Attempts[0].Note; !strings.Contains(n, "1045") {
			t.Errorf("wrong password: note %q, want the 1045 explanation", n)
		}
	})

	t.Run("haguard probe in the box reads binds and show stat", func(t *testing.T) {
		bin := testbed.BuildHaguard(t)
		yml := filepath.Join(s.Dir(), "haguard-probe.yaml")
		if err := os.WriteFile(yml, []byte(fmt.Sprintf("haproxy:\n  configs: [%q]\n  stats_socket: %q\n", s.HAProxyConfig(), sock)), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var rep Report
		for i := 0; i < 25; i++ { // health checks run every 200 ms; wait for L7OK (bounded)
			out, errs, err := s.Run(ctx, bin, "probe", "--config-file", yml, "--format", "json")
			if err != nil {
				t.Fatalf("haguard probe: %v\n%s\n%s", err, out, errs)
			}
			rep = Report{}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if allL7OK(rep.Servers) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		// galera and galera_short_wait have mysql-check; galera_proxy_cut
		// has neither a check nor port 3306 (test servers listen on free
		// ports), so it is probed as tcp.
		var kinds []string
		for _, tr := range rep.Targets {
			kinds = append(kinds, fmt.Sprintf("%s %d/%d", tr.Kind, tr.OK, tr.AttemptsTotal))
		}
		if got := strings.Join(kinds, ", "); !rep.OK || got != "mysql 20/20, mysql 20/20, tcp 20/20" {
			t.Fatalf("report: ok %v targets %s", rep.OK, got)
		}
		if len(rep.Servers) != 3 || !allL7OK(rep.Servers) {
			t.Fatalf("servers = %+v", rep.Servers)
		}
	})

	t.Run("idle-hold: both timeouts long enough, no cut", func(t *testing.T) {
		rep := run(t, Target{Address: front, Kind: KindIdleHold, Over: KindMySQL, User: user, Password: password, Idle: 4 * time.Second, Count: 1})
		a := rep.Targets[0].Attempts[0]
		if !a.OK || a.Idle == nil || a.Idle.Closed || !a.Idle.LoggedIn || a.Idle.WaitTimeoutS != 30 {
			t.Fatalf("attempt %+v idle %+v", a, a.Idle)
		}
	})

	t.Run("idle-hold: wait_timeout 3 s, the server closes", func(t *testing.T) {
		rep := run(t, Target{Address: frontShort, Kind: KindIdleHold, Over: KindMySQL, User: user, Password: password, Idle: 15 * time.Second, Count: 1})
		a := rep.Targets[0].Attempts[0]
		if a.OK || a.Idle == nil || !a.Idle.Closed || a.Idle.ClosedBy != ClosedByServer || a.Idle.WaitTimeoutS != 3 {
			t.Fatalf("attempt %+v idle %+v", a, a.Idle)
		}
		// A behaviour check: the close follows wait_timeout, not the 15 s hold.
		if got := a.Idle.ClosedAfterMS; got < 2000 || got > 8000 {
			t.Fatalf("closed after %.0f ms, want about 3000", got)
		}
		t.Logf("closed by %s after %.0f ms (%s)", a.Idle.ClosedBy, a.Idle.ClosedAfterMS, a.Idle.How)
	})

	t.Run("idle-hold: haproxy timeout server 5s cuts before wait_timeout 30 s: the proxy", func(t *testing.T) {
		rep := run(t, Target{Address: frontCut, Kind: KindIdleHold, Over: KindMySQL, User: user, Password: password, Idle: 15 * time.Second, Count: 1})
		a := rep.Targets[0].Attempts[0]
		if a.OK || a.Idle == nil || !a.Idle.Closed || a.Idle.ClosedBy != ClosedByProxy || a.Idle.WaitTimeoutS != 30 {
			t.Fatalf("attempt %+v idle %+v", a, a.Idle)
		}
		if got := a.Idle.ClosedAfterMS; got < 4000 || got > 7000 {
			t.Fatalf("cut after %.0f ms, want about 5000", got)
		}
		t.Logf("closed by %s after %.0f ms (%s)", a.Idle.ClosedBy, a.Idle.ClosedAfterMS, a.Idle.How)
	})

	t.Run("ghost on the same port: failures counted, then all OK once it is gone", func(t *testing.T) {
		ghost := s.StartGhost(t, testbed.TCPProxyConfig(front, testbed.DeadAddr(t)))
		target := Target{Address: front, Kind: KindMySQL, Count: 40}
		rep := run(t, target)
		tr := rep.Targets[0]
		t.Logf("with ghost: OK %d / FAIL %d, errors %v, listeners %d", tr.OK, tr.Fail, tr.Errors, tr.Listeners)
		if tr.OK == 0 || tr.Fail == 0 || tr.Errors[ReasonClosedEarly] != tr.Fail {
			t.Fatalf("want a mix of OK and %q: OK %d FAIL %d errors %v", ReasonClosedEarly, tr.OK, tr.Fail, tr.Errors)
		}
		if tr.Listeners < 2 {
			t.Errorf("listeners = %d, want the worker and the ghost", tr.Listeners)
		}
		if got := AttemptsFor(Target{Address: front, Kind: KindMySQL}, Options{ListenerCount: func(string) int { return tr.Listeners }}); got != DefaultMinCount {
			t.Errorf("default count with %d listeners = %d", tr.Listeners, got)
		}

		// A plain connect cannot see the ghost; lingering (the default)
		// can.
		tcpLinger := Target{Address: front, Kind: KindTCP, Count: 40, Linger: 300 * time.Millisecond}
		tl := run(t, tcpLinger).Targets[0]
		t.Logf("tcp with linger, with ghost: OK %d / FAIL %d, errors %v", tl.OK, tl.Fail, tl.Errors)
		if tl.OK == 0 || tl.Fail == 0 || tl.Errors[ReasonClosedByProxy] != tl.Fail {
			t.Errorf("tcp with linger: OK %d FAIL %d errors %v, want a mix of %q", tl.OK, tl.Fail, tl.Errors, ReasonClosedByProxy)
		}
		plain := run(t, Target{Address: front, Kind: KindTCP, Count: 40, Linger: NoLinger}).Targets[0]
		if plain.OK != plain.AttemptsTotal {
			t.Errorf("plain connect (linger off): OK %d/%d, errors %v: the accept alone always passes", plain.OK, plain.AttemptsTotal, plain.Errors)
		}

		killGhosts(t, s, ghost)
		rep = run(t, target, tcpLinger)
		for _, tr := range rep.Targets {
			if tr.OK != tr.AttemptsTotal {
				t.Fatalf("after the ghost is gone: %s %d/%d OK, errors %v", tr.Kind, tr.OK, tr.AttemptsTotal, tr.Errors)
			}
		}
	})
}

// allL7OK: every checked server is UP with L7OK, the unchecked ones say so.
func allL7OK(servers []ServerStatus) bool {
	for _, s := range servers {
		if s.Status == "no check" && s.CheckStatus == "" {
			continue
		}
		if s.CheckStatus != "L7OK" || s.Status != "UP" {
			return false
		}
	}
	return len(servers) > 0
}

// killGhosts ends the ghost with `haguard ghosts --kill` inside the box
// when that command exists; until it does, it kills the ghost's PID.
func killGhosts(t *testing.T, s *testbed.Sandbox, ghost *testbed.Proc) {
	t.Helper()
	bin := testbed.BuildHaguard(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := s.Run(ctx, bin, "ghosts", "--help"); err != nil {
		t.Logf("haguard ghosts is not built yet (%v); killing the ghost's PID directly", firstLine(err))
		ghost.Kill()
	} else {
		out, errs, err := s.Run(ctx, bin, "ghosts", "--kill")
		var ee *exec.ExitError
		// Exit 1 means "ghosts were found" (and killed); anything else is a failure.
		if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
			t.Fatalf("haguard ghosts --kill: %v\n%s\n%s", err, out, errs)
		}
		t.Logf("haguard ghosts --kill: %s", strings.TrimSpace(out))
	}
	select {
	case <-ghost.Done():
	case <-ctx.Done():
		t.Fatal("ghost still alive")
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// TestSystemProbesDoNotBlockTheHost: MariaDB blocks a client host (1129)
// after max_connect_errors connections that end during the handshake, when
// it resolves names (Debian's default). haproxy on another host looks like
// that to the server; here haproxy connects from 127.0.0.2, which the
// server does not treat as loopback. Credential-less mysql probes finish
// the handshake with a refused login instead, so they never count; the
// same number of plain drops does get the host blocked.
func TestSystemProbesDoNotBlockTheHost(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	m := testbed.StartMariaDB(t, testbed.MariaDBOptions{ExtraArgs: []string{"--max-connect-errors=5", "--skip-name-resolve=0"}})
	front := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	runHAProxy(t, fmt.Sprintf(`defaults
    mode tcp
    retries 0
    timeout connect 1s
    timeout client 10s
    timeout server 10s
listen db
    bind %s
    server db1 %s source 127.0.0.2
`, front, m.Addr()), front)

	rep := Run(context.Background(), []Target{{Address: front, Kind: KindMySQL, Count: 20}}, Options{Timeout: 3 * time.Second})
	if tr := rep.Targets[0]; tr.OK != 20 {
		t.Fatalf("20 probes with max_connect_errors=5: %d OK, errors %v", tr.OK, tr.Errors)
	}

	// The control: dropping right after the handshake, as a naive probe
	// (or mysql-check without a user) does, gets the host blocked.
	var blocked error
	for i := 0; i < 10 && blocked == nil; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		conn, err := dial(ctx, front)
		if err == nil {
			_, err = ReadHandshake(conn)
			conn.Close()
		}
		cancel()
		if Reason(err) == "mysql error 1129" {
			blocked = err
		}
	}
	if blocked == nil {
		t.Fatal("the control never got 127.0.0.2 blocked: this test proves nothing on this server")
	}
	t.Logf("control: %v", blocked)
}
