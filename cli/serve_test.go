package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// writeFile writes data with exactly mode (the umask does not apply).
func writeFile(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestServeRefusals(t *testing.T) {
	dir := t.TempDir()
	yaml := filepath.Join(dir, "haguard.yaml")
	writeFile(t, yaml, "api:\n  listen: 127.0.0.1:0\n", 0o644)
	loose := filepath.Join(dir, "token-0644")
	writeFile(t, loose, "0123456789abcdef0123456789abcdef\n", 0o644)
	tight := filepath.Join(dir, "token-0600")
	writeFile(t, tight, "0123456789abcdef0123456789abcdef\n", 0o600)
	badScope := filepath.Join(dir, "token-scope")
	writeFile(t, badScope, "admin 0123456789abcdef0123456789abcdef\n", 0o600)
	openDir := filepath.Join(dir, "open")
	if err := os.Mkdir(openDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openDir, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"token 0644", []string{"serve", "--token-file", loose},
			[]string{"refusing to start", loose, "mode 0644", "chmod 0600 " + loose}},
		{"no token file", []string{"serve", "--token-file", filepath.Join(dir, "absent")},
			[]string{"refusing to start", "no such file"}},
		{"non-loopback", []string{"serve", "--token-file", tight, "--listen", "0.0.0.0:9180"},
			[]string{"non-loopback"}},
		{"relative unix socket", []string{"serve", "--token-file", tight, "--listen", "unix:haguard.sock"},
			[]string{"must be absolute"}},
		{"socket dir others may write", []string{"serve", "--token-file", tight, "--listen", "unix:" + filepath.Join(openDir, "haguard.sock")},
			[]string{"socket directory", "group or others may write it", "chmod go-w"}},
		{"scope unknown", []string{"serve", "--token-file", badScope},
			[]string{"refusing to start", `scope "admin": want read or write`}},
		{"arguments", []string{"serve", "extra"}, []string{"unknown command"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(t.Context(), append([]string{"--config-file", yaml}, c.args...), &out, &errb)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, errb.String())
			}
			for _, w := range c.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q: %s", w, errb.String())
				}
			}
		})
	}
}

// TestUnitFile keeps the promises docs/api.md makes about the unit.
func TestUnitFile(t *testing.T) {
	b, err := os.ReadFile("../deploy/haguard.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"\nType=notify\n", "\nNotifyAccess=main\n", "\nWatchdogSec=", "\nExecReload=/bin/kill -HUP $MAINPID\n",
		"\nExecStart=/usr/bin/haguard serve\n", "CAP_KILL", "\nProtectSystem=strict\n",
		"\nReadWritePaths=-/etc/haproxy\n", "\nStateDirectory=haguard\n", "AF_UNIX", "\nNoNewPrivileges=yes\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("deploy/haguard.service lacks %q", strings.TrimSpace(want))
		}
	}
	for _, bad := range []string{"\nProtectProc=invisible", "\nProcSubset=pid", "\nPrivateNetwork=yes", "\nMemoryDenyWriteExecute=yes"} {
		if strings.Contains(unit, bad) {
			t.Errorf("deploy/haguard.service sets %q, which breaks the sweep, probes or haproxy -c", strings.TrimSpace(bad))
		}
	}
}

// serveBox is haguard serve running as a Type=notify unit in the box.
type serveBox struct {
	s      *testbed.Sandbox
	listen string // haproxy's frontend
	api    string // http://127.0.0.1:port
	token  string
	state  string
	good   string
	client *http.Client
	sock   string // host path of the API's unix socket, if any
	// started is when systemctl start returned (READY=1 was seen).
	started time.Time
}

// newServeBox boots the box with haproxy.service, writes haguard.yaml and
// a 0600 token, installs deploy/haguard.service with a runtime drop-in that
// points it at the test binary and files, and starts it. `systemctl start`
// of a Type=notify unit returns only after READY=1.
//
// listen is api.listen; empty means a free loopback port. With
// unix:/path the test's client dials the socket through the box's root.
func newServeBox(t testing.TB, listen string, dropIn ...string) *serveBox {
	t.Helper()
	return newServeBoxYAML(t, nil, listen, dropIn...)
}

// newServeBoxYAML is newServeBox with haguard.yaml passed through edit
// first (nil: as is).
func newServeBoxYAML(t testing.TB, edit func(yaml string) string, listen string, dropIn ...string) *serveBox {
	t.Helper()
	testbed.Require(t, testbed.TierSystem)
	b := &serveBox{s: testbed.Boot(t), client: &http.Client{Timeout: 2 * time.Minute}}
	bin := testbed.BuildHaguard(t)
	b.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	b.good = testbed.TCPProxyConfig(b.listen, testbed.TCPBackend(t))
	b.s.StartHAProxy(t, b.good)
	b.api = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	yamlListen := b.api
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		yamlListen, b.api, b.sock = listen, "haguard", b.s.HostPath(path)
		b.client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", b.sock)
		}}
	}
	b.state = filepath.Join(b.s.Dir(), "state")
	var tok [24]byte
	_, _ = rand.Read(tok[:])
	b.token = hex.EncodeToString(tok[:])
	tokenFile := filepath.Join(b.s.Dir(), "token")
	writeFile(t, tokenFile, b.token+"\n", 0o600)
	yaml := filepath.Join(b.s.Dir(), "haguard.yaml")
	yamlText := fmt.Sprintf(`haproxy:
  configs: [%q]
state_dir: %q
reload:
  settle_timeout: 10s
  min_interval: 0s
sweep:
  interval: 10s
probe:
  count: 10
  timeout: 2s
  targets:
    - address: %q
      kind: tcp
      expect: "hello"
api:
  listen: %q
  token_file: %q
`, b.s.HAProxyConfig(), b.state, b.listen, yamlListen, tokenFile)
	if edit != nil {
		yamlText = edit(yamlText)
	}
	writeFile(t, yaml, yamlText, 0o644)

	unit, err := os.ReadFile("../deploy/haguard.service")
	if err != nil {
		t.Fatal(err)
	}
	sysdir := b.s.HostPath("/run/systemd/system")
	if err := os.MkdirAll(filepath.Join(sysdir, "haguard.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sysdir, "haguard.service"), string(unit), 0o644)
	// The drop-in changes only what a test needs: the binary and files
	// live in the shared test dir, and the host's /var/lib must not get a
	// haguard state dir. Every hardening line of the real unit applies.
	// A 3 s watchdog: most tests run longer, so a daemon that did not
	// ping would be killed (TestServe checks Result and NRestarts 5 s
	// after start). Checked every 0.75 s, it takes about three failed
	// self-checks in a row, not one slow one, to be killed.
	writeFile(t, filepath.Join(sysdir, "haguard.service.d", "test.conf"), fmt.Sprintf(`[Service]
ExecStart=
ExecStart=%s --config-file %s --log-level debug serve
StateDirectory=
ReadWritePaths=%s
WatchdogSec=3s
%s
`, bin, yaml, b.s.Dir(), strings.Join(dropIn, "\n")), 0o644)
	b.systemctl(t, "daemon-reload")
	if _, err := b.s.Systemctl(t.Context(), "start", "haguard.service"); err != nil {
		t.Fatalf("start haguard.service: %v\n%s", err, b.journal(t))
	}
	b.started = time.Now()
	return b
}

func (b *serveBox) systemctl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := b.s.Systemctl(ctx, args...)
	if err != nil {
		t.Fatalf("systemctl %v: %v\n%s", args, err, b.journal(t))
	}
	return strings.TrimSpace(out)
}

func (b *serveBox) journal(t testing.TB) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _, _ := b.s.Run(ctx, "journalctl", "--no-pager", "-o", "cat", "-n", "60", "-u", "haguard.service")
	st, _, _ := b.s.Run(ctx, "systemctl", "status", "--no-pager", "haguard.service")
	return out + "\n" + st
}

func (b *serveBox) do(t testing.TB, method, path string, body io.Reader, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+b.api+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", method, path, err, b.journal(t))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

func (b *serveBox) waitJob(t testing.TB, id string) api.JobView {
	t.Helper()
	return b.waitAt(t, "/v1/reloads/"+id)
}

// waitAt polls a job's Location until the job is done (bounded).
func (b *serveBox) waitAt(t testing.TB, loc string) api.JobView {
	t.Helper()
	for range 1200 {
		code, _, data := b.do(t, "GET", loc, nil, nil)
		var j api.JobView
		if code != 200 || json.Unmarshal(data, &j) != nil {
			t.Fatalf("GET %s: %d %s", loc, code, data)
		}
		if j.State == "done" || j.State == "cancelled" {
			return j
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s never finished\n%s", loc, b.journal(t))
	return api.JobView{}
}

// concurrentReloads sends n reload requests at once, three candidates in
// turn (two new configs and the installed one), and waits for every job.
// Each job must end ok or unchanged with exactly one audit record (reason
// "api <id>"), and no two transactions may overlap in time.
func (b *serveBox) concurrentReloads(t *testing.T, n int) {
	t.Helper()
	cands := []string{
		strings.Replace(b.good, "timeout client 30s", "timeout client 32s", 1),
		strings.Replace(b.good, "timeout client 30s", "timeout client 33s", 1),
		"", // reload what is installed
	}
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+b.api+"/v1/reloads", strings.NewReader(cands[i%len(cands)]))
			req.Header.Set("Authorization", "Bearer "+b.token)
			resp, err := b.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var j api.JobView
			if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&j) != nil {
				t.Errorf("POST %d: %s", i, resp.Status)
				return
			}
			ids[i] = j.ID
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	jobs := map[string]api.JobView{}
	for _, id := range ids {
		if _, seen := jobs[id]; !seen {
			jobs[id] = b.waitJob(t, id)
		}
	}
	recs := readAudit(t, filepath.Join(b.state, "audit.log"))
	byReason := map[string]int{}
	var spans [][2]time.Time
	for _, r := range recs {
		byReason[r.Reason]++
		spans = append(spans, [2]time.Time{r.Time, r.Time.Add(time.Duration(r.Result.DurationMS) * time.Millisecond)})
	}
	for id, j := range jobs {
		if j.State != "done" || (j.Result != api.ResultOK && j.Result != api.ResultUnchanged) {
			t.Errorf("job %s: %+v", id, j)
		}
		if byReason["api "+id] != 1 {
			t.Errorf("job %s has %d audit records", id, byReason["api "+id])
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i][0].Before(spans[j][0]) })
	for i := 1; i < len(spans); i++ {
		if spans[i][0].Before(spans[i-1][1]) {
			t.Errorf("transactions overlap: %v..%v and %v..%v", spans[i-1][0], spans[i-1][1], spans[i][0], spans[i][1])
		}
	}
	t.Logf("%d requests -> %d transactions; %d audit records in all", n, len(jobs), len(recs))
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestServeUnit is the daemon acceptance test: haguard serve runs as a
// Type=notify unit under the box's systemd with the real unit file, a
// REST reload changes the running config, 100 concurrent reload requests
// are all answered and the audit log shows one transaction at a time, a
// ghost started by hand shows up in /v1/ghosts, SIGHUP goes through
// RELOADING=1/READY=1, and stop is clean.
func TestServeUnit(t *testing.T) {
	b := newServeBox(t, "")
	if st := b.systemctl(t, "is-active", "haguard.service"); st != "active" {
		t.Fatalf("haguard.service is %q\n%s", st, b.journal(t))
	}
	props := b.systemctl(t, "show", "-p", "Type,NotifyAccess,WatchdogUSec,StatusText", "haguard.service")
	for _, want := range []string{"Type=notify", "NotifyAccess=main", "WatchdogUSec=3s", "StatusText=API listening on " + b.api} {
		if !strings.Contains(props, want) {
			t.Errorf("unit properties lack %q: %s", want, props)
		}
	}

	// The hardening applies (and haguard works under it, below): the
	// bounding set is CAP_CHOWN, CAP_KILL, CAP_SETGID, CAP_SETUID and
	// CAP_SYS_PTRACE, and no new privileges.
	pid := strings.TrimPrefix(b.systemctl(t, "show", "-p", "MainPID", "haguard.service"), "MainPID=")
	status, _, err := b.s.Run(t.Context(), "cat", "/proc/"+pid+"/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CapBnd:\t00000000000800e1", "CapEff:\t00000000000800e1", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(status, want) {
			t.Errorf("haguard's /proc/%s/status lacks %q:\n%s", pid, want, status)
		}
	}

	// No token: 401.
	resp, err := http.Get("http://" + b.api + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	code, hdr, data := b.do(t, "GET", "/v1/status", nil, nil)
	var st struct {
		Unit         *api.UnitStatus `json:"unit"`
		ConfigSHA256 string          `json:"config_sha256"`
	}
	if code != 200 || json.Unmarshal(data, &st) != nil || st.Unit == nil || st.Unit.ActiveState != "active" {
		t.Fatalf("status: %d %s", code, data)
	}
	if st.ConfigSHA256 != sha(b.good) || hdr.Get("ETag") != `"`+sha(b.good)+`"` {
		t.Fatalf("status sha %s etag %s, want %s", st.ConfigSHA256, hdr.Get("ETag"), sha(b.good))
	}
	gen := st.Unit.Generation

	t.Run("rest reload changes the running config", func(t *testing.T) {
		cand := strings.Replace(b.good, "timeout client 30s", "timeout client 31s", 1)
		code, _, data := b.do(t, "POST", "/v1/reloads", strings.NewReader("x"+cand), map[string]string{"If-Match": strings.Repeat("0", 64)})
		if code != http.StatusPreconditionFailed {
			t.Fatalf("stale If-Match: %d %s", code, data)
		}
		code, hdr, data := b.do(t, "POST", "/v1/reloads", strings.NewReader(cand), map[string]string{"If-Match": sha(b.good)})
		var j api.JobView
		if code != http.StatusAccepted || json.Unmarshal(data, &j) != nil || hdr.Get("Location") != "/v1/reloads/"+j.ID {
			t.Fatalf("POST /v1/reloads: %d %s", code, data)
		}
		j = b.waitJob(t, j.ID)
		if j.Result != api.ResultOK || j.Error != "" {
			t.Fatalf("reload: %+v\n%s", j, b.journal(t))
		}
		disk, err := os.ReadFile(b.s.HAProxyConfig())
		if err != nil || string(disk) != cand {
			t.Fatalf("config on disk is not the candidate (%v)", err)
		}
		_, _, data = b.do(t, "GET", "/v1/status", nil, nil)
		if json.Unmarshal(data, &st) != nil || st.Unit.Generation <= gen || st.ConfigSHA256 != sha(cand) || st.Unit.Drift {
			t.Fatalf("after reload: generation %d (was %d), sha %s: %s", st.Unit.Generation, gen, st.ConfigSHA256, data)
		}
		ok, fail := testbed.ConnectLoop(t.Context(), b.listen, 20, testbed.Greeting)
		if fail != 0 {
			t.Fatalf("traffic after the REST reload: %d ok, %d failed", ok, fail)
		}
	})

	t.Run("check, probes and rollback over REST", func(t *testing.T) {
		var chk struct {
			OK     bool           `json:"ok"`
			Valid  bool           `json:"valid"`
			Output string         `json:"output"`
			Counts map[string]int `json:"counts"`
		}
		code, _, data := b.do(t, "POST", "/v1/check", strings.NewReader(b.good), nil)
		if code != 200 || json.Unmarshal(data, &chk) != nil || !chk.Valid {
			t.Fatalf("check of the good config: %d %s", code, data)
		}
		code, _, data = b.do(t, "POST", "/v1/check", strings.NewReader(b.good+"\nbogus_keyword here\n"), nil)
		if code != 200 || json.Unmarshal(data, &chk) != nil || chk.Valid || chk.OK {
			t.Fatalf("check of a config haproxy -c refuses: %d %s", code, data)
		}
		if ents, _ := os.ReadDir(filepath.Join(b.state, "api")); len(ents) != 0 {
			t.Errorf("scratch files left in the state dir: %v", ents)
		}

		var pr api.ProbeReport
		code, _, data = b.do(t, "POST", "/v1/probes", strings.NewReader(`{"targets":["`+b.listen+`"],"count":5}`), nil)
		if code != 200 || json.Unmarshal(data, &pr) != nil || pr.Totals.OK != 5 || pr.Totals.Failed != 0 {
			t.Fatalf("probes: %d %s", code, data)
		}
		code, _, data = b.do(t, "POST", "/v1/probes", strings.NewReader(`{"targets":["127.0.0.1:1"]}`), nil)
		if code != http.StatusUnprocessableEntity {
			t.Fatalf("probe of an address that is not a target: %d %s", code, data)
		}

		// Roll back the REST reload above: the original config returns.
		before, err := os.ReadFile(b.s.HAProxyConfig())
		if err != nil {
			t.Fatal(err)
		}
		code, _, data = b.do(t, "POST", "/v1/rollback", nil, nil)
		var j api.JobView
		if code != http.StatusAccepted || json.Unmarshal(data, &j) != nil || j.Kind != "rollback" {
			t.Fatalf("rollback: %d %s", code, data)
		}
		if j = b.waitJob(t, j.ID); j.Result != api.ResultOK {
			t.Fatalf("rollback job: %+v\n%s", j, b.journal(t))
		}
		after, _ := os.ReadFile(b.s.HAProxyConfig())
		if string(after) == string(before) || string(after) != b.good {
			t.Fatalf("rollback did not restore the original config")
		}
	})

	t.Run("100 concurrent reloads, one at a time", func(t *testing.T) {
		b.concurrentReloads(t, 100)
	})

	t.Run("ghost started by hand is listed", func(t *testing.T) {
		ghost := b.s.StartGhost(t, testbed.TCPProxyConfig(b.listen, testbed.DeadAddr(t)))
		code, _, data := b.do(t, "GET", "/v1/ghosts?fresh=1", nil, nil)
		var sw struct {
			Ghosts    int             `json:"ghosts"`
			Processes []procs.Process `json:"processes"`
		}
		if code != 200 || json.Unmarshal(data, &sw) != nil {
			t.Fatalf("ghosts: %d %s", code, data)
		}
		found := false
		for _, p := range sw.Processes {
			if int(p.PID) == ghost.BoxPID && p.Class == procs.Ghost {
				found = true
			}
		}
		if !found || sw.Ghosts < 1 {
			t.Fatalf("ghost pid %d not listed as a ghost: %s", ghost.BoxPID, data)
		}
		_, _, metrics := b.do(t, "GET", "/metrics", nil, nil)
		if !strings.Contains(string(metrics), `haguard_processes{unit="haproxy.service",class="ghost"} 1`) {
			t.Errorf("metrics do not count the ghost")
		}
		if !strings.Contains(b.journal(t), fmt.Sprintf("pid=%d class=ghost", ghost.BoxPID)) {
			t.Errorf("no warning about the ghost in the journal")
		}
		ghost.Kill()
	})

	t.Run("command-line reloads are counted too, API ones once", func(t *testing.T) {
		okCount := func() int {
			t.Helper()
			_, _, m := b.do(t, "GET", "/metrics", nil, nil)
			for line := range strings.SplitSeq(string(m), "\n") {
				if v, ok := strings.CutPrefix(line, `haguard_reloads_total{unit="haproxy.service",result="ok"} `); ok {
					n, err := strconv.Atoi(v)
					if err != nil {
						t.Fatalf("metric line %q", line)
					}
					return n
				}
			}
			t.Fatalf("no haguard_reloads_total{result=\"ok\"} in\n%s", m)
			return 0
		}
		sweepNow := func() {
			t.Helper()
			if code, _, data := b.do(t, "GET", "/v1/ghosts?fresh=1", nil, nil); code != 200 {
				t.Fatalf("sweep: %d %s", code, data)
			}
		}
		// Every transaction so far ran through the API, after the daemon
		// started, and is in the audit log; the sweeps after them read
		// that log and must not count them again.
		sweepNow()
		committed := 0
		for _, r := range readAudit(t, filepath.Join(b.state, "audit.log")) {
			if r.Who != "api" {
				t.Fatalf("audit record by %q before any command-line run", r.Who)
			}
			if r.Outcome == reload.OutcomeCommitted {
				committed++
			}
		}
		before := okCount()
		if before == 0 || before != committed {
			t.Fatalf("haguard_reloads_total{result=\"ok\"} is %d; the audit log holds %d committed API transactions", before, committed)
		}
		out, errOut, err := b.s.Run(t.Context(), testbed.BuildHaguard(t), "--config-file", filepath.Join(b.s.Dir(), "haguard.yaml"),
			"--log-level", "error", "reload", "--force", "--reason", "runbook step 4")
		if err != nil {
			t.Fatalf("haguard reload: %v\n%s\n%s", err, out, errOut)
		}
		sweepNow()
		if n := okCount(); n != before+1 {
			t.Fatalf("after a command-line reload and a sweep, ok %d -> %d, want +1", before, n)
		}
	})

	t.Run("SIGHUP reloads haguard.yaml and rotates the token", func(t *testing.T) {
		old := b.token
		b.token = "rotated-" + old
		writeFile(t, filepath.Join(b.s.Dir(), "token"), b.token+"\n", 0o600)
		b.systemctl(t, "reload", "haguard.service")
		// systemctl reload returns when kill -HUP has run; haguard then
		// sends RELOADING=1 ... READY=1. Wait (bounded) for the new token.
		var code int
		for i := 0; i < 100; i++ {
			if code, _, _ = b.do(t, "GET", "/v1/status", nil, nil); code == 200 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code != 200 {
			t.Fatalf("rotated token refused after SIGHUP: %d\n%s", code, b.journal(t))
		}
		if code, _, _ := b.do(t, "GET", "/v1/status", nil, map[string]string{"Authorization": "Bearer " + old}); code != 401 {
			t.Fatalf("old token after rotation: %d", code)
		}
		if !strings.Contains(b.journal(t), "SIGHUP: haguard.yaml reloaded") {
			t.Fatalf("no reload in the journal\n%s", b.journal(t))
		}
		if st := b.systemctl(t, "is-active", "haguard.service"); st != "active" {
			t.Fatalf("after reload: %q", st)
		}
		// A token file that became group-readable is refused: the running
		// token stays.
		writeFile(t, filepath.Join(b.s.Dir(), "token"), "another-token-0123456789\n", 0o644)
		b.systemctl(t, "reload", "haguard.service")
		for i := 0; i < 100 && !strings.Contains(b.journal(t), "token file not reloaded"); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(b.journal(t), "token file not reloaded") {
			t.Fatalf("a 0644 token file was not refused on SIGHUP\n%s", b.journal(t))
		}
		if code, _, _ := b.do(t, "GET", "/v1/status", nil, nil); code != 200 {
			t.Fatalf("running token lost after a refused rotation: %d", code)
		}
	})

	// Past the 3 s watchdog period after start: still the first process
	// (one that never pinged is killed at 3 s: MainPID and Result change).
	time.Sleep(time.Until(b.started.Add(5 * time.Second)))
	if p := b.systemctl(t, "show", "-p", "NRestarts,MainPID,Result", "haguard.service"); !strings.Contains(p, "NRestarts=0") ||
		!strings.Contains(p, "MainPID="+pid) || !strings.Contains(p, "Result=success") {
		t.Errorf("haguard restarted (watchdog?): %s\n%s", p, b.journal(t))
	}
	b.systemctl(t, "stop", "haguard.service")
	st2, _ := b.s.Systemctl(t.Context(), "is-active", "haguard.service")
	if strings.TrimSpace(st2) != "inactive" {
		t.Fatalf("after stop: %q\n%s", st2, b.journal(t))
	}
	if !strings.Contains(b.journal(t), "haguard serve stopped") {
		t.Errorf("no clean stop in the journal\n%s", b.journal(t))
	}
}

// TestServeStopDuringReload: SIGTERM while a transaction runs. The
// transaction is held at its settle stage by the test hook; stop must wait
// for it, and it must commit, not be cut off.
func TestServeStopDuringReload(t *testing.T) {
	b := newServeBox(t, "", "Environment=HAGUARD_TEST_PAUSE_AT=settle HAGUARD_TEST_PAUSE_FOR=3s")
	cand := strings.Replace(b.good, "timeout client 30s", "timeout client 34s", 1)
	code, _, data := b.do(t, "POST", "/v1/reloads", strings.NewReader(cand), nil)
	var j api.JobView
	if code != http.StatusAccepted || json.Unmarshal(data, &j) != nil {
		t.Fatalf("POST: %d %s", code, data)
	}
	for i := 0; !strings.Contains(b.journal(t), "HAGUARD_TEST_PAUSED settle"); i++ {
		if i > 600 {
			t.Fatalf("the transaction never reached settle\n%s", b.journal(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A second job waits behind it; shutdown cancels it.
	code, _, data = b.do(t, "POST", "/v1/reloads", strings.NewReader(b.good), nil)
	var waiting api.JobView
	if code != http.StatusAccepted || json.Unmarshal(data, &waiting) != nil {
		t.Fatalf("second POST: %d %s", code, data)
	}
	b.systemctl(t, "stop", "haguard.service") // returns once the process is gone
	if _, err := os.Stat(filepath.Join(b.state, "audit.log")); err != nil {
		t.Fatalf("no audit after stop: %v\n%s", err, b.journal(t))
	}
	recs := readAudit(t, filepath.Join(b.state, "audit.log"))
	var got []string
	for _, r := range recs {
		got = append(got, r.Reason+"="+r.Outcome)
	}
	if !slices.Contains(got, "api "+j.ID+"="+reload.OutcomeCommitted) {
		t.Fatalf("the in-flight reload did not commit before exit; audit: %v\n%s", got, b.journal(t))
	}
	if slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "api "+waiting.ID+"=") }) {
		t.Fatalf("the waiting job ran during shutdown: %v", got)
	}
	if disk, err := os.ReadFile(b.s.HAProxyConfig()); err != nil || string(disk) != cand {
		t.Fatalf("the candidate is not installed after stop (%v)", err)
	}
	j1 := strings.Index(b.journal(t), "transaction finished")
	j2 := strings.Index(b.journal(t), "haguard serve stopped")
	if j1 < 0 || j2 < 0 || j1 > j2 {
		t.Fatalf("journal order: finished at %d, stopped at %d\n%s", j1, j2, b.journal(t))
	}
}

// TestServeUnixSocket: the unit listens on a unix socket in its
// RuntimeDirectory, under ProtectSystem=strict, with mode 0600.
func TestServeUnixSocket(t *testing.T) {
	b := newServeBox(t, "unix:/run/haguard/haguard.sock")
	fi, err := os.Stat(b.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a 0600 socket", fi.Mode())
	}
	code, _, data := b.do(t, "GET", "/v1/status", nil, nil)
	if code != 200 || !strings.Contains(string(data), `"active_state":"active"`) {
		t.Fatalf("status over the socket: %d %s", code, data)
	}
	code, _, _ = b.do(t, "GET", "/v1/status", nil, map[string]string{"Authorization": "Bearer nope-nope-nope-nope"})
	if code != 401 {
		t.Fatalf("wrong token over the socket: %d", code)
	}
	b.systemctl(t, "stop", "haguard.service")
	if _, err := os.Stat(b.sock); err == nil {
		t.Error("the socket outlived the daemon")
	}
}

func readAudit(t *testing.T, path string) []reload.AuditRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []reload.AuditRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r reload.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line: %v", err)
		}
		out = append(out, r)
	}
	return out
}
