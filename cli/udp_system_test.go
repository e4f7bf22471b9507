package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/internal/testbed"
)

// Tier 3, issue 14 item 5: UDP listeners are swept like TCP ones.
//
// Debian 12's haproxy 2.6 is built without QUIC (`haproxy -vv`: -QUIC),
// so the UDP listener here is a `log-forward` `dgram-bind`: a UDP socket
// haproxy binds with SO_REUSEPORT exactly like a quic4@ bind, which the
// kernel shares between processes the same way. With a QUIC build
// (HAGUARD_HAPROXY_BIN), the listener is a quic4@ bind instead
// (quicListener).

// udpConfig is TCPProxyConfig plus a UDP log target for every session
// (so each worker holds the sending socket haproxy opens for it) and a
// UDP listener on udpAddr.
func udpConfig(t *testing.T, dir, listen, backend, udpAddr, logAddr string) string {
	global, frontend := udpListener(t, dir, udpAddr, logAddr)
	return fmt.Sprintf(`global
	maxconn 256
	log %s local0
%s
defaults
	mode tcp
	log global
	option tcplog
	retries 0
	timeout connect 1s
	timeout client 30s
	timeout server 30s

frontend fe_test
	bind %s
	default_backend be_test

backend be_test
	server s1 %s
%s`, logAddr, global, listen, backend, frontend)
}

// udpListener returns the global lines and the section that listen on
// udpAddr over UDP: a quic4@ bind when the haproxy under test has QUIC,
// else a log-forward dgram-bind.
func udpListener(t *testing.T, dir, udpAddr, logAddr string) (global, section string) {
	if g, s, ok := quicListener(t, dir, udpAddr); ok {
		return g, s
	}
	return "", fmt.Sprintf(`
log-forward lf_test
	dgram-bind %s
	log %s local0
`, udpAddr, logAddr)
}

// TestSystemGhostOnUDPListenerFound: a ghost that shares only the unit's
// UDP listener is found (and --kill removes it), while haproxy's UDP
// sending socket (its log target's) on a draining worker is not taken
// for a listener: the old worker stays draining, not divergent.
func TestSystemGhostOnUDPListenerFound(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	b := &ghostBox{s: testbed.Boot(t), bin: testbed.BuildHaguard(t)}
	b.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.backend = testbed.TCPBackend(t)
	udpAddr := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	logAddr := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.good = udpConfig(t, b.s.Dir(), b.listen, b.backend, udpAddr, logAddr)
	b.s.StartHAProxy(t, b.good)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	r, code := b.ghosts(t)
	if code != exitOK || r.Counts.Current != 2 || !r.Clean() {
		t.Fatalf("exit %d, counts %+v: %+v", code, r.Counts, r.Processes)
	}
	for _, p := range r.Of(procs.Current) {
		if p.PID != r.MasterPID && !containsStr(p.Listen, udpAddr+"/udp") {
			t.Fatalf("the worker's UDP listener is not listed: %+v", p)
		}
	}

	// Sessions end and are logged: the worker now holds its log socket.
	if ok, fail := testbed.ConnectLoop(ctx, b.listen, 5, testbed.Greeting); fail != 0 {
		t.Fatalf("traffic: ok=%d fail=%d", ok, fail)
	}
	conn := b.s.HoldConnection(t, b.listen)
	defer conn.Close()
	sp := b.reload(t)
	if len(sp.OldWorkers) != 1 {
		t.Fatalf("no old worker after the reload: %+v", sp)
	}
	old := sp.OldWorkers[0].PID
	// Independently of haguard: ss(8) sees the old worker's UDP socket,
	// shut down for reading ("-->"). Without it this test tests nothing.
	ss, _, err := b.s.Run(ctx, "ss", "-uanp")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ss, fmt.Sprintf("pid=%d,", old)) {
		t.Fatalf("the old worker %d holds no UDP socket, so the log sender case is not exercised:\n%s", old, ss)
	}
	var p procs.Process
	for range 50 { // the old worker closes its listeners right after the handover
		r, code = b.ghosts(t, "--settle", "0")
		if p = byPID(r)[old]; p.Class == procs.Draining {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != exitOK || p.Class != procs.Draining || len(p.Listen) != 0 {
		t.Fatalf("old worker %d with its log socket: exit %d, %+v\nss:\n%s", old, code, p, ss)
	}

	// A ghost with an old config: its own TCP port, the unit's UDP one.
	ghostTCP := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	ghost := b.s.StartGhost(t, udpConfig(t, b.s.Dir(), ghostTCP, testbed.DeadAddr(t), udpAddr, logAddr))
	r, code = b.ghosts(t)
	g := byPID(r)[int32(ghost.BoxPID)]
	if code != exitNegative || g.Class != procs.Ghost || !containsStr(g.Listen, udpAddr+"/udp") ||
		!strings.Contains(g.Reason, "LISTENs on "+udpAddr+"/udp, which the managed haproxy also serves in the same network namespace") {
		t.Fatalf("UDP ghost (box pid %d): exit %d, %+v", ghost.BoxPID, code, g)
	}
	r, code = b.ghosts(t, "--kill", "--grace", "5s")
	if code != exitOK || len(b.kills) != 1 || b.kills[0].PID != int32(ghost.BoxPID) {
		t.Fatalf("--kill: exit %d, kills %+v", code, b.kills)
	}
	select {
	case <-ghost.Done():
	case <-ctx.Done():
		t.Fatal("the UDP ghost still runs after --kill")
	}
}

func containsStr(list []string, s string) bool { return slices.Contains(list, s) }

// hasQUIC reports whether the haproxy under test was built with QUIC.
func hasQUIC(t *testing.T) (quic, compat bool) {
	out, err := exec.Command(testbed.HAProxyBin(), "-vv").CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -vv: %v", err)
	}
	return strings.Contains(string(out), "+QUIC"), strings.Contains(string(out), "USE_QUIC_OPENSSL_COMPAT=1")
}

// quicListener is a quic4@ bind on udpAddr with a self-signed
// certificate written to dir, when the haproxy under test has QUIC.
func quicListener(t *testing.T, dir, udpAddr string) (global, section string, ok bool) {
	quic, compat := hasQUIC(t)
	if !quic {
		t.Logf("%s has no QUIC (haproxy -vv: -QUIC): the UDP listener is a log-forward dgram-bind", testbed.HAProxyBin())
		return "", "", false
	}
	pem := filepath.Join(dir, "quic.pem")
	if _, err := os.Stat(pem); err != nil {
		writeSelfSigned(t, pem)
	}
	if compat {
		global = "\tlimited-quic\n" // QUIC over OpenSSL's compatibility layer must be asked for
	}
	t.Logf("%s has QUIC: the UDP listener is quic4@%s", testbed.HAProxyBin(), udpAddr)
	return global, fmt.Sprintf(`
frontend fe_quic
	mode http
	bind quic4@%s ssl crt %s alpn h3
	http-request return status 200
`, udpAddr, pem), true
}

// writeSelfSigned writes a certificate and its key, PEM, to path.
func writeSelfSigned(t *testing.T, path string) {
	t.Helper()
	cert, key, _ := testbed.SelfSignedCert(t)
	if err := os.WriteFile(path, append(cert, key...), 0o600); err != nil {
		t.Fatal(err)
	}
}
