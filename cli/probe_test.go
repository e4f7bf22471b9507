package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeMySQLGreeter accepts connections on 127.0.0.1:0 and greets each with
// a MySQL v10 handshake, as a server (or haproxy in front of one) does.
func fakeMySQLGreeter(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := []byte{10}
	p = append(p, "10.11.6-MariaDB-test\x00"...)
	p = binary.LittleEndian.AppendUint32(p, 42)
	p = append(p, "abcdefgh\x00"...)
	pkt := append([]byte{byte(len(p)), 0, 0, 0}, p...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write(pkt)
				// Answer the probe's no-login user with 1045, as a server does.
				var hdr [4]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(hdr[0])|int64(hdr[1])<<8|int64(hdr[2])<<16); err != nil {
					return
				}
				denied := "\xff\x15\x04#28000Access denied"
				c.Write(append([]byte{byte(len(denied)), 0, 0, 2}, denied...))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func deadTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// probeEnv writes a haguard.yaml that points haproxy.configs at cfg and
// returns the --config-file arguments, so the host's files never leak in.
func probeEnv(t *testing.T, haproxyCfg, statsSocket string) []string {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if haproxyCfg != "" {
		if err := os.WriteFile(cfgPath, []byte(haproxyCfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if statsSocket == "" {
		statsSocket = filepath.Join(dir, "no-such.sock")
	}
	y := fmt.Sprintf("haproxy:\n  configs: [%q]\n  stats_socket: %q\n", cfgPath, statsSocket)
	yp := filepath.Join(dir, "haguard.yaml")
	if err := os.WriteFile(yp, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--config-file", yp}
}

func runProbeCmd(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append(append([]string{"probe"}, env...), args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestProbeUsage(t *testing.T) {
	env := probeEnv(t, "", "")
	good := fakeMySQLGreeter(t)
	cases := map[string][]string{
		"bad kind":              {"--target", good, "--kind", "udp"},
		"bad over":              {"--target", good, "--kind", "idle-hold", "--over", "http"},
		"target without port":   {"--target", "127.0.0.1"},
		"target bad port":       {"--target", "127.0.0.1:99999"},
		"negative count":        {"--target", good, "--count", "-1"},
		"zero idle":             {"--target", good, "--idle", "0s"},
		"positional argument":   {good},
		"no targets, no cfg":    {},
		"unreadable socket":     {"--target", good, "--stats-socket", filepath.Join(t.TempDir(), "x.sock")},
		"missing password file": {"--target", good, "--mysql-user", "u", "--mysql-password-file", "/nonexistent/pw"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if code, _, errs := runProbeCmd(t, env, args...); code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr %s", code, exitUsage, errs)
			}
		})
	}
}

func TestProbeJSONContract(t *testing.T) {
	env := probeEnv(t, "", "")
	good := fakeMySQLGreeter(t)
	code, out, errs := runProbeCmd(t, env, "--target", good, "--kind", "mysql", "--count", "5", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	var doc struct {
		OK      bool `json:"ok"`
		Targets []struct {
			Target        string         `json:"target"`
			Kind          string         `json:"kind"`
			AttemptsTotal int            `json:"attempts_total"`
			OK            int            `json:"ok"`
			Fail          int            `json:"fail"`
			Errors        map[string]int `json:"errors"`
			LatencyMS     *struct {
				P50 *float64 `json:"p50"`
				Max *float64 `json:"max"`
			} `json:"latency_ms"`
			Attempts []struct {
				OK            *bool    `json:"ok"`
				Error         *string  `json:"error"`
				LatencyMS     *float64 `json:"latency_ms"`
				ServerVersion string   `json:"server_version"`
			} `json:"attempts"`
		} `json:"targets"`
		Servers []any `json:"servers"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !doc.OK || len(doc.Targets) != 1 || doc.Servers == nil {
		t.Fatalf("doc = %+v", doc)
	}
	tr := doc.Targets[0]
	if tr.Target != good || tr.Kind != "mysql" || tr.AttemptsTotal != 5 || tr.OK != 5 || tr.Fail != 0 || tr.Errors == nil ||
		tr.LatencyMS == nil || tr.LatencyMS.P50 == nil || tr.LatencyMS.Max == nil || len(tr.Attempts) != 5 {
		t.Fatalf("target = %+v", tr)
	}
	a := tr.Attempts[0]
	if a.OK == nil || !*a.OK || a.Error == nil || a.LatencyMS == nil || a.ServerVersion != "10.11.6-MariaDB-test" {
		t.Fatalf("attempt = %+v", a)
	}
}

func TestProbeFailureHuman(t *testing.T) {
	env := probeEnv(t, "", "")
	good, dead := fakeMySQLGreeter(t), deadTCPAddr(t)
	code, out, errs := runProbeCmd(t, env, "--target", good, "--target", dead, "--count", "3")
	if code != exitNegative {
		t.Fatalf("exit %d, want %d: %s %s", code, exitNegative, out, errs)
	}
	// Kind inferred from the port (not 3306): tcp. Neither is a bind of
	// the (empty) haproxy config, so the linger assumes haproxy's
	// defaults; the greeting ends it at once.
	for _, want := range []string{
		good + " tcp    OK 3/3  linger 3.30s  p50 ",
		`    greeting "#\x00\x00\x00\n10.11.6-MariaDB-test\x00`,
		dead + " tcp    OK 0/3 (3 failed: 3 × connection refused)  linger 3.30s  p50 ",
		"probe FAILED: OK 3/6 (3 failed: 3 × connection refused)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestProbeInfersTargetsFromHAProxyConfig(t *testing.T) {
	good := fakeMySQLGreeter(t)
	// The bind is the fake server's own address, so no haproxy is needed
	// to check that the config's binds become mysql targets.
	cfg := fmt.Sprintf(`defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s
listen galera
    bind %s
    option mysql-check user haproxy
    server db1 127.0.0.1:3306 check
frontend web
    mode http
    bind /run/haguard-test-never.sock
`, good)
	env := probeEnv(t, cfg, "")
	code, out, errs := runProbeCmd(t, env, "--count", "2", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	if !strings.Contains(out, `"kind": "mysql"`) || !strings.Contains(out, `"target": "`+good+`"`) ||
		!strings.Contains(out, "10.11.6-MariaDB-test") {
		t.Fatalf("output:\n%s", out)
	}
	// -f wins over haproxy.configs, and an idle-hold over it speaks mysql.
	code, out, errs = runProbeCmd(t, probeEnv(t, "", ""), "-f", filepath.Join(filepath.Dir(env[1]), "haproxy.cfg"),
		"--kind", "idle-hold", "--idle", "200ms", "--format", "json")
	if code != exitOK || !strings.Contains(out, `"idle_ms": 200`) || !strings.Contains(out, "10.11.6-MariaDB-test") {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
	}
}

func TestProbeServersTable(t *testing.T) {
	answer, err := os.ReadFile("../agent/probe/testdata/showstat-haproxy-2.6.csv")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			c.Read(buf)
			c.Write(answer)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	env := probeEnv(t, "", sock)
	code, out, errs := runProbeCmd(t, env, "--target", fakeMySQLGreeter(t), "--count", "1")
	if code != exitOK {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	for _, want := range []string{"BACKEND", "clustercheck  node2    DOWN", "L7STS 503", "backend alldown (DOWN): down gone, 0 up"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
