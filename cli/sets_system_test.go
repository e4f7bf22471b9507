package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// Tier 3: the unit is the source of truth. The haguard binary runs in the
// box against a unit written as Fedora and RHEL ship haproxy.service: a
// config file and a conf.d directory, an EnvironmentFile, no master CLI.

type setBox struct {
	s                        *testbed.Sandbox
	bin, yaml, state         string
	cfg, cfgdir, env, mapDir string
	listen                   string
}

// setMain is the main file: two backends that answer with their own name
// (no server needed), a stats socket, and a map file it loads.
func setMain(mapFile string) string {
	return fmt.Sprintf(`global
	maxconn 256

defaults
	mode http
	timeout connect 1s
	timeout client 30s
	timeout server 30s

backend be_a
	http-request set-var(txn.who) str(a)
	http-request return status 200 content-type text/plain string "served by A"

backend be_b
	http-request return status 200 content-type text/plain lf-string "served by B %%[req.hdr(host),lower,map(%s,unknown)]"
`, mapFile)
}

// setApp is conf.d's frontend, sending everything to backend be.
func setApp(listen, be string) string {
	return fmt.Sprintf("frontend fe_app\n\tbind %s\n\tdefault_backend %s\n", listen, be)
}

func newSetBox(t *testing.T) *setBox {
	t.Helper()
	testbed.Require(t, testbed.TierSystem)
	b := &setBox{s: testbed.Boot(t), bin: testbed.BuildHaguard(t)}
	dir := b.s.Dir()
	b.cfg, b.cfgdir, b.env = filepath.Join(dir, "etc/haproxy.cfg"), filepath.Join(dir, "etc/conf.d"), filepath.Join(dir, "sysconfig-haproxy")
	b.mapDir = filepath.Join(dir, "etc/maps")
	b.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.s.WriteFiles(t, map[string]string{
		b.cfg:                                 setMain(filepath.Join(b.mapDir, "hosts.map")),
		filepath.Join(b.cfgdir, "10-app.cfg"): setApp(b.listen, "be_a"),
		filepath.Join(b.mapDir, "hosts.map"):  "example.com green\n",
		b.env:                                 "OPTIONS=\n",
	})
	b.s.InstallUnit(t, "haproxy.service", testbed.RHELUnit(b.cfg, b.cfgdir, b.env))
	b.s.StartUnit(t, "haproxy.service")
	b.state = filepath.Join(dir, "state")
	b.yaml = filepath.Join(dir, "haguard.yaml")
	b.writeYAML(t, "")
	return b
}

// writeYAML writes haguard.yaml: no haproxy block (the unit says what
// runs) unless extra adds one.
func (b *setBox) writeYAML(t *testing.T, extra string) {
	t.Helper()
	y := "state_dir: " + strconv.Quote(b.state) + "\nreload:\n  settle_timeout: 10s\n  min_interval: 0s\nprobe:\n  count: 6\n  timeout: 2s\n" + extra
	if err := os.WriteFile(b.yaml, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (b *setBox) haguard(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, errOut, err := b.s.Run(ctx, append([]string{b.bin, "--config-file", b.yaml}, args...)...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, errOut, 0
	case errors.As(err, &ee):
		return out, errOut, ee.ExitCode()
	}
	t.Fatalf("run haguard: %v", err)
	return "", "", -1
}

func (b *setBox) reload(t *testing.T, args ...string) (reload.Result, int) {
	t.Helper()
	out, errOut, code := b.haguard(t, append([]string{"--format", "json", "reload"}, args...)...)
	var res reload.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("reload %v (exit %d): %v\nstdout: %s\nstderr: %s", args, code, err, out, errOut)
	}
	t.Logf("reload %v: exit %d, stages %+v", args, code, res.Stages)
	return res, code
}

// get fetches / through haproxy and returns the body.
func (b *setBox) get(t *testing.T) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", b.listen, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", b.listen, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")
	body, _ := io.ReadAll(c)
	return string(body)
}

func (b *setBox) read(t *testing.T, path string) string {
	t.Helper()
	d, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(d)
}

func TestSystemYAMLContradictsUnitIsRefused(t *testing.T) {
	b := newSetBox(t)
	other := filepath.Join(b.s.Dir(), "other.cfg")
	b.s.WriteFiles(t, map[string]string{other: setMain("/nonexistent.map")})
	b.writeYAML(t, "haproxy:\n  configs: ["+strconv.Quote(other)+"]\n")
	cand := filepath.Join(b.s.Dir(), "cand.cfg")
	b.s.WriteFiles(t, map[string]string{cand: setMain(filepath.Join(b.mapDir, "hosts.map")) + "# changed\n"})
	before := b.read(t, b.cfg)
	out, errOut, code := b.haguard(t, "reload", "--candidate", cand)
	if code != 2 || !strings.Contains(errOut, "haproxy.configs is "+other) || !strings.Contains(errOut, b.cfg) {
		t.Fatalf("exit %d, want 2 naming both configs\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if b.read(t, b.cfg) != before || b.read(t, other) != setMain("/nonexistent.map") {
		t.Fatal("a refused run installed something")
	}
	if _, err := os.Stat(filepath.Join(b.state, "history")); err == nil {
		t.Error("a refused run wrote history")
	}
}

func TestSystemConfDirEdit(t *testing.T) {
	b := newSetBox(t)
	if body := b.get(t); !strings.Contains(body, "served by A") {
		t.Fatalf("before: %q", body)
	}
	// haguard learns what runs with a first (unchanged) reload.
	if _, code := b.reload(t, "--force"); code != 0 {
		t.Fatalf("first reload: exit %d", code)
	}
	app := filepath.Join(b.cfgdir, "10-app.cfg")
	b.s.WriteFiles(t, map[string]string{app: setApp(b.listen, "be_b")})

	out, _, code := b.haguard(t, "--format", "json", "status")
	var st statusDoc
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	if code != 1 || !st.Drift || len(st.DriftFiles) != 1 || st.DriftFiles[0] != app || !strings.Contains(st.DriftReason, app) {
		t.Fatalf("status exit %d, drift %v files %v reason %q: want the conf.d file named", code, st.Drift, st.DriftFiles, st.DriftReason)
	}
	if st.Discovery.ConfigsFrom == "" || len(st.Discovery.Configs) != 2 || st.Discovery.Configs[1] != b.cfgdir || st.Discovery.MasterSocket.Value != "" {
		t.Errorf("discovery %+v", st.Discovery)
	}

	res, code := b.reload(t)
	if code != 0 || res.Unchanged {
		t.Fatalf("reload of the conf.d edit: exit %d, unchanged %v", code, res.Unchanged)
	}
	if body := b.get(t); !strings.Contains(body, "served by B green") {
		t.Fatalf("after the reload haproxy answers %q, want backend B (with the map's value)", body)
	}
	if out, errOut, code := b.haguard(t, "status"); code != 0 {
		t.Errorf("status after the reload: exit %d, want 0 (no drift)\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

func TestSystemSetRollsBackAsAWhole(t *testing.T) {
	b := newSetBox(t)
	app := filepath.Join(b.cfgdir, "10-app.cfg")
	hosts := filepath.Join(b.mapDir, "hosts.map")
	before := map[string]string{b.cfg: b.read(t, b.cfg), app: b.read(t, app), hosts: b.read(t, hosts)}

	// A candidate tree that changes the main file, the conf.d file and
	// the map; its frontend also binds a second port where nothing
	// answers (a server that does not exist), so its probe fails.
	dead := testbed.DeadAddr(t)
	extra := fmt.Sprintf("frontend fe_dead\n\tbind 127.0.0.1:%d\n\tdefault_backend be_dead\nbackend be_dead\n\tserver s %s\n", testbed.FreePort(t), dead)
	candDir := filepath.Join(b.s.Dir(), "cand")
	b.s.WriteFiles(t, map[string]string{
		filepath.Join(candDir, b.cfg): setMain(hosts) + "# v2\n",
		filepath.Join(candDir, app):   setApp(b.listen, "be_b") + extra,
		filepath.Join(candDir, hosts): "example.com blue\n",
	})
	res, code := b.reload(t, "--candidate", candDir)
	if code != 1 || !res.RolledBack {
		t.Fatalf("exit %d rolled back %v, want 1 and a rollback", code, res.RolledBack)
	}
	for p, want := range before {
		if got := b.read(t, p); got != want {
			t.Errorf("%s after the rollback:\n%s\nwant, byte for byte:\n%s", p, got, want)
		}
	}
	if body := b.get(t); !strings.Contains(body, "served by A") {
		t.Errorf("after the rollback haproxy answers %q, want backend A", body)
	}
	// The history keeps the three files, so `haguard rollback` and the
	// audit can say what changed.
	out, _, _ := b.haguard(t, "--format", "json", "history")
	var es []reload.Entry
	if err := json.Unmarshal([]byte(out), &es); err != nil || len(es) == 0 {
		t.Fatalf("history: %v\n%s", err, out)
	}
	if n := len(es[len(es)-1].Files); n != 3 {
		t.Errorf("history entry names %d files, want 3: %+v", n, es[len(es)-1].Files)
	}
}

func TestSystemRHELUnitWithoutMasterCLI(t *testing.T) {
	b := newSetBox(t)
	// A good candidate commits: the generation is read from the process table.
	cand := filepath.Join(b.s.Dir(), "good.cfg")
	b.s.WriteFiles(t, map[string]string{cand: setMain(filepath.Join(b.mapDir, "hosts.map")) + "# v2\n"})
	start := time.Now()
	res, code := b.reload(t, "--candidate", cand)
	if code != 0 || !res.OK {
		t.Fatalf("good candidate: exit %d", code)
	}
	t.Logf("committed in %s", time.Since(start))

	// A candidate whose bind cannot be made (an address that is not
	// local): haproxy -c accepts it, the reload fails. It is caught by
	// settle, well before the settle timeout, and rolled back.
	bad := filepath.Join(b.s.Dir(), "bad.cfg")
	b.s.WriteFiles(t, map[string]string{bad: setMain(filepath.Join(b.mapDir, "hosts.map")) +
		"frontend fe_nobind\n\tbind 192.0.2.1:80\n\tdefault_backend be_a\n"})
	good := b.read(t, b.cfg)
	start = time.Now()
	res, code = b.reload(t, "--candidate", bad)
	took := time.Since(start)
	if code != 1 || !res.RolledBack {
		t.Fatalf("bad bind: exit %d rolled back %v, want 1 and a rollback", code, res.RolledBack)
	}
	if took > 9*time.Second {
		t.Errorf("the failed reload took %s to be caught (settle_timeout is 10s): it must not wait for a socket", took)
	}
	if b.read(t, b.cfg) != good {
		t.Error("the failed candidate is still on disk")
	}
	if body := b.get(t); !strings.Contains(body, "served by A") {
		t.Errorf("after the rollback haproxy answers %q", body)
	}
}

// Several haproxy units on one host: --unit takes a glob, every instance
// is reloaded and reported on its own, each with a state dir of its own.
func TestSystemSeveralUnits(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	s := testbed.Boot(t)
	bin := testbed.BuildHaguard(t)
	dir := s.Dir()
	listens := map[string]string{}
	for _, inst := range []string{"edge", "db"} {
		listens[inst] = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
		s.WriteFiles(t, map[string]string{filepath.Join(dir, inst+".cfg"): testbed.TCPProxyConfig(listens[inst], testbed.TCPBackend(t))})
	}
	s.InstallUnit(t, "haproxy@.service", testbed.TemplateUnit(dir))
	s.StartUnit(t, "haproxy@edge.service")
	s.StartUnit(t, "haproxy@db.service")
	state := filepath.Join(dir, "state")
	yaml := filepath.Join(dir, "haguard.yaml")
	if err := os.WriteFile(yaml, []byte("state_dir: "+strconv.Quote(state)+"\nprobe:\n  count: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, errOut, err := s.Run(ctx, append([]string{bin, "--config-file", yaml, "--format", "json"}, args...)...)
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("haguard %v: %v\n%s", args, err, errOut)
		}
		code := 0
		if ee != nil {
			code = ee.ExitCode()
		}
		t.Logf("haguard %v: exit %d\n%s", args, code, errOut)
		return out, code
	}
	type row struct {
		Unit     string          `json:"unit"`
		ExitCode int             `json:"exit_code"`
		Result   json.RawMessage `json:"result"`
	}
	out, code := run("reload", "--force", "--unit", "haproxy@*.service")
	var rows []row
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != 0 || len(rows) != 2 {
		t.Fatalf("reload of both: exit %d, %v\n%s", code, err, out)
	}
	for _, r := range rows {
		var res reload.Result
		if err := json.Unmarshal(r.Result, &res); err != nil || !res.OK || r.ExitCode != 0 {
			t.Errorf("%s: exit %d, result %s", r.Unit, r.ExitCode, r.Result)
		}
		// Each unit keeps its own history.
		if _, err := os.Stat(filepath.Join(state, "units", r.Unit, "history")); err != nil {
			t.Errorf("%s: no history of its own: %v", r.Unit, err)
		}
	}
	out, code = run("status", "--unit", "haproxy@*.service")
	rows = nil
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != 0 || len(rows) != 2 {
		t.Fatalf("status of both: exit %d, %v\n%s", code, err, out)
	}
	for _, r := range rows {
		var st statusDoc
		if err := json.Unmarshal(r.Result, &st); err != nil {
			t.Fatal(err)
		}
		inst := strings.TrimSuffix(strings.TrimPrefix(r.Unit, "haproxy@"), ".service")
		if st.Drift || len(st.Discovery.Configs) != 1 || st.Discovery.Configs[0] != filepath.Join(dir, inst+".cfg") ||
			st.Discovery.MasterSocket.Value != "/run/haproxy-"+inst+".sock" {
			t.Errorf("%s: drift %v (%s), discovery %+v", r.Unit, st.Drift, st.DriftReason, st.Discovery)
		}
	}
	if _, code := run("reload", "--unit", "haproxy@*.service", "--candidate", filepath.Join(dir, "edge.cfg")); code != 2 {
		t.Errorf("a candidate for several units: exit %d, want 2", code)
	}
}
