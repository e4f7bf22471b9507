package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/internal/testbed"
)

// TestServeIfMatchUnderLock is issue 17's lost update, against haguard
// serve as deploy/haguard.service: a command-line reload holds the lock
// (paused before its install) and commits c1, while an API job whose
// If-Match names the config before c1 waits behind it. The API job must
// end refused and c1 must stay installed.
func TestServeIfMatchUnderLock(t *testing.T) {
	b := newServeBox(t, "")
	c1 := strings.Replace(b.good, "timeout client 30s", "timeout client 41s", 1)
	c2 := strings.Replace(b.good, "timeout client 30s", "timeout client 42s", 1)
	c1File := filepath.Join(b.s.Dir(), "c1.cfg")
	writeFile(t, c1File, c1, 0o600)

	cli := b.s.Start(t, "env", "HAGUARD_TEST_PAUSE_AT=install", "HAGUARD_TEST_PAUSE_FOR=4s",
		testbed.BuildHaguard(t), "--config-file", filepath.Join(b.s.Dir(), "haguard.yaml"),
		"reload", "--candidate", c1File, "--reason", "c1 from the command line")
	for i := 0; !strings.Contains(cli.Output(), "HAGUARD_TEST_PAUSED install"); i++ {
		if i > 600 {
			t.Fatalf("the command-line reload never reached install: %s", cli.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The config on disk is still the one the client read: submission's
	// check passes, the job waits for the lock.
	code, _, data := b.do(t, "POST", "/v1/reloads", strings.NewReader(c2), map[string]string{"If-Match": sha(b.good)})
	var j api.JobView
	if code != http.StatusAccepted || json.Unmarshal(data, &j) != nil {
		t.Fatalf("POST with the pre-c1 If-Match while the CLI holds the lock: %d %s", code, data)
	}
	if err := cli.Err(); err != nil {
		t.Fatalf("command-line reload: %v\n%s", err, cli.Output())
	}
	j = b.waitJob(t, j.ID)
	if j.Result != api.ResultRefused || !strings.Contains(j.Error, "stale") {
		t.Fatalf("API job with a stale If-Match: %+v\n%s", j, b.journal(t))
	}
	if disk, err := os.ReadFile(b.s.HAProxyConfig()); err != nil || string(disk) != c1 {
		t.Fatalf("the config on disk is not c1 (%v):\n%s", err, disk)
	}
	// Already stale at submission: 412, no job.
	code, _, data = b.do(t, "POST", "/v1/reloads", strings.NewReader(c2), map[string]string{"If-Match": sha(b.good)})
	if code != http.StatusPreconditionFailed {
		t.Fatalf("stale at submission: %d %s", code, data)
	}
}

// TestServeJobIDsSurviveRestart: a job's id is its history id, and it
// resolves after `systemctl restart haguard`; a job accepted and then lost
// when the daemon was killed mid-transaction answers "lost", not 404; the
// scratch files a killed daemon left are removed at start; the next
// reload recovers and completes.
func TestServeJobIDsSurviveRestart(t *testing.T) {
	b := newServeBox(t, "")
	c1 := strings.Replace(b.good, "timeout client 30s", "timeout client 43s", 1)
	code, _, data := b.do(t, "POST", "/v1/reloads", strings.NewReader(c1), nil)
	var done api.JobView
	if code != http.StatusAccepted || json.Unmarshal(data, &done) != nil {
		t.Fatalf("POST c1: %d %s", code, data)
	}
	done = b.waitJob(t, done.ID)
	tx, _ := done.Transaction.(map[string]any)
	if done.Result != api.ResultOK || tx["id"] != done.ID {
		t.Fatalf("c1 job: result %s, transaction id %v, want the job id %s", done.Result, tx["id"], done.ID)
	}

	// Restart with the test hook that holds a transaction at settle.
	dropIns := b.s.HostPath("/run/systemd/system/haguard.service.d")
	writeFile(t, filepath.Join(dropIns, "pause.conf"), "[Service]\nEnvironment=HAGUARD_TEST_PAUSE_AT=settle HAGUARD_TEST_PAUSE_FOR=5min\n", 0o644)
	b.systemctl(t, "daemon-reload")
	b.systemctl(t, "restart", "haguard.service")
	var j api.JobView
	code, _, data = b.do(t, "GET", "/v1/reloads/"+done.ID, nil, nil)
	if code != 200 || json.Unmarshal(data, &j) != nil || j.State != "done" || j.Result != api.ResultOK || j.Transaction == nil {
		t.Fatalf("a completed job's id after systemctl restart: %d %s", code, data)
	}

	// A job the daemon accepts and then loses: killed at settle.
	c2 := strings.Replace(b.good, "timeout client 30s", "timeout client 44s", 1)
	code, _, data = b.do(t, "POST", "/v1/reloads", strings.NewReader(c2), nil)
	var lost api.JobView
	if code != http.StatusAccepted || json.Unmarshal(data, &lost) != nil {
		t.Fatalf("POST c2: %d %s", code, data)
	}
	for i := 0; !strings.Contains(b.journal(t), "HAGUARD_TEST_PAUSED settle"); i++ {
		if i > 600 {
			t.Fatalf("the transaction never reached settle\n%s", b.journal(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.Remove(filepath.Join(dropIns, "pause.conf")); err != nil {
		t.Fatal(err)
	}
	b.systemctl(t, "daemon-reload")
	b.systemctl(t, "kill", "--signal=KILL", "haguard.service")
	b.systemctl(t, "stop", "haguard.service") // no automatic restart: the scratch file goes in first
	scratch := filepath.Join(b.state, "api", "candidate-left-by-a-crash.cfg")
	writeFile(t, scratch, "global\n", 0o600)
	b.systemctl(t, "start", "haguard.service")
	if _, err := os.Stat(scratch); !os.IsNotExist(err) {
		t.Errorf("scratch file not removed at start: %v", err)
	}
	code, _, data = b.do(t, "GET", "/v1/reloads/"+lost.ID, nil, nil)
	if code != 200 || json.Unmarshal(data, &j) != nil || j.State != "lost" || j.Error == "" {
		t.Fatalf("a job lost in a crash: %d %s", code, data)
	}
	code, _, data = b.do(t, "GET", "/v1/reloads/"+done.ID, nil, nil)
	if code != 200 || json.Unmarshal(data, &j) != nil || j.Result != api.ResultOK {
		t.Fatalf("the completed job after a crash: %d %s", code, data)
	}
	// The next reload recovers the host and completes.
	c3 := strings.Replace(b.good, "timeout client 30s", "timeout client 45s", 1)
	code, _, data = b.do(t, "POST", "/v1/reloads", strings.NewReader(c3), nil)
	var next api.JobView
	if code != http.StatusAccepted || json.Unmarshal(data, &next) != nil {
		t.Fatalf("POST c3: %d %s", code, data)
	}
	if next = b.waitJob(t, next.ID); next.Result != api.ResultOK {
		t.Fatalf("reload after the crash: %+v\n%s", next, b.journal(t))
	}
	if disk, err := os.ReadFile(b.s.HAProxyConfig()); err != nil || string(disk) != c3 {
		t.Fatalf("config on disk is not c3 (%v)", err)
	}
	// The lost job's transaction is in the history, closed by the recovery.
	code, _, data = b.do(t, "GET", "/v1/reloads/"+lost.ID, nil, nil)
	if code != 200 || json.Unmarshal(data, &j) != nil || j.State != "lost" || j.Transaction == nil {
		t.Fatalf("the lost job after recovery: %d %s", code, data)
	}
	t.Logf("lost job after recovery: result %q", j.Result)
}

// TestServeScopesAndMetricsListener: issue 17's "/metrics needs the
// all-powerful token". The token file gets a read token; the daemon also
// serves /metrics on a listener of its own with TLS and basic auth from an
// exporter-toolkit web config file. The read token scrapes /metrics and
// reads the status, and gets 403 on POST /v1/reloads (and nothing runs);
// the metrics listener answers its basic-auth user over TLS, 401 without
// it, and serves nothing but /metrics.
func TestServeScopesAndMetricsListener(t *testing.T) {
	b := newServeBox(t, "")
	dir := b.s.Dir()
	readTok := "read-" + b.token
	writeFile(t, filepath.Join(dir, "token"), "# haguard tokens\nwrite "+b.token+"\nread "+readTok+"\n", 0o600)

	cert, pool := testCert(t)
	writeFile(t, filepath.Join(dir, "metrics.crt"), cert[0], 0o600)
	writeFile(t, filepath.Join(dir, "metrics.key"), cert[1], 0o600)
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-secret"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "web.yml"), "tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\n"+
		"basic_auth_users:\n  prometheus: "+string(hash)+"\n", 0o600)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	yaml, err := os.ReadFile(filepath.Join(dir, "haguard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "haguard.yaml"), string(yaml)+fmt.Sprintf("  metrics_listen: %q\n  metrics_web_config: %q\n",
		metricsAddr, filepath.Join(dir, "web.yml")), 0o644)
	b.systemctl(t, "restart", "haguard.service")

	rd := map[string]string{"Authorization": "Bearer " + readTok}
	code, _, data := b.do(t, "GET", "/metrics", nil, rd)
	if code != 200 || !strings.Contains(string(data), "haguard_reloads_total") {
		t.Fatalf("read token, GET /metrics: %d %.300s", code, data)
	}
	if code, _, data = b.do(t, "GET", "/v1/status", nil, rd); code != 200 {
		t.Fatalf("read token, GET /v1/status: %d %s", code, data)
	}
	cand := strings.Replace(b.good, "timeout client 30s", "timeout client 46s", 1)
	code, _, data = b.do(t, "POST", "/v1/reloads", strings.NewReader(cand), rd)
	if code != http.StatusForbidden || !strings.Contains(string(data), `"forbidden"`) {
		t.Fatalf("read token, POST /v1/reloads: %d %s", code, data)
	}
	if code, _, _ = b.do(t, "POST", "/v1/check", strings.NewReader(cand), rd); code != http.StatusForbidden {
		t.Fatalf("read token, POST /v1/check: %d", code)
	}
	if disk, _ := os.ReadFile(b.s.HAProxyConfig()); string(disk) != b.good {
		t.Fatal("a read token changed the config")
	}
	if !strings.Contains(b.journal(t), "request refused") {
		t.Errorf("the 403 is not in the journal at warn")
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	scrape := func(path, user, pass string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+metricsAddr+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s on the metrics listener: %v\n%s", path, err, b.journal(t))
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := scrape("/metrics", "prometheus", "scrape-secret"); code != 200 || !strings.Contains(body, "haguard_reloads_total") {
		t.Fatalf("metrics listener with the password: %d %.300s", code, body)
	}
	if code, _ := scrape("/metrics", "prometheus", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("metrics listener, wrong password: %d", code)
	}
	if code, _ := scrape("/metrics", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("metrics listener, no password: %d", code)
	}
	if code, _ := scrape("/v1/status", "prometheus", "scrape-secret"); code != http.StatusNotFound {
		t.Fatalf("metrics listener serves /v1/status: %d", code)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + metricsAddr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP scraped the TLS metrics listener")
		}
	}
}

// testCert is a self-signed certificate for 127.0.0.1: its PEM and key
// PEM, and a pool that trusts it.
func testCert(t *testing.T) ([2]string, *x509.CertPool) {
	cert, key, pool := testbed.SelfSignedCert(t)
	return [2]string{string(cert), string(key)}, pool
}

// TestServeConfirmWithin: commit-confirmed through the API against the
// real unit: a provisional reload's watcher runs and the API confirms it;
// a window whose watcher is gone is resumed when haguard serve starts (a
// new watcher before the deadline, a rollback after it).
func TestServeConfirmWithin(t *testing.T) {
	b := newServeBox(t, "")
	post := func(cfg, within string) api.JobView {
		t.Helper()
		code, _, data := b.do(t, "POST", "/v1/reloads?confirm_within="+within, strings.NewReader(cfg), nil)
		var j api.JobView
		if code != http.StatusAccepted || json.Unmarshal(data, &j) != nil {
			t.Fatalf("POST confirm_within=%s: %d %s", within, code, data)
		}
		j = b.waitJob(t, j.ID)
		tx, _ := j.Transaction.(map[string]any)
		if j.Result != api.ResultOK || tx["pending"] == nil {
			t.Fatalf("provisional reload: %+v\n%s", j, b.journal(t))
		}
		return j
	}
	watcherActive := func(id string) string {
		out, _ := b.s.Systemctl(t.Context(), "is-active", "haguard-confirm-"+id+".service")
		return strings.TrimSpace(out)
	}
	disk := func() string {
		d, err := os.ReadFile(b.s.HAProxyConfig())
		if err != nil {
			t.Fatal(err)
		}
		return string(d)
	}

	// 1. Provisional, watched, confirmed over the API.
	c1 := strings.Replace(b.good, "timeout client 30s", "timeout client 47s", 1)
	j1 := post(c1, "2m")
	if st := watcherActive(j1.ID); st != "active" {
		t.Fatalf("watcher of %s: %s", j1.ID, st)
	}
	code, _, data := b.do(t, "POST", "/v1/reloads/"+j1.ID+"/confirm", nil, nil)
	if code != 200 || !strings.Contains(string(data), `"confirmation":"confirmed"`) {
		t.Fatalf("confirm: %d %s", code, data)
	}
	if code, _, data = b.do(t, "POST", "/v1/reloads/"+j1.ID+"/confirm", nil, nil); code != http.StatusConflict {
		t.Fatalf("second confirm: %d %s", code, data)
	}
	if disk() != c1 {
		t.Fatal("the confirmed reload is not installed")
	}

	// 2. The watcher is gone and haguard restarts before the deadline: a
	// new watcher; then confirmed.
	c2 := strings.Replace(b.good, "timeout client 30s", "timeout client 48s", 1)
	j2 := post(c2, "3m")
	b.systemctl(t, "stop", "haguard-confirm-"+j2.ID+".service")
	b.systemctl(t, "restart", "haguard.service")
	for i := 0; watcherActive(j2.ID) != "active"; i++ {
		if i > 100 {
			t.Fatalf("the watcher of %s was not started again\n%s", j2.ID, b.journal(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(b.journal(t), "confirmation window resumed") {
		t.Errorf("the resumed window is not in the journal")
	}
	if code, _, data = b.do(t, "POST", "/v1/reloads/"+j2.ID+"/confirm", nil, nil); code != 200 {
		t.Fatalf("confirm after restart: %d %s", code, data)
	}

	// 3. The watcher is gone and haguard is down past the deadline: at
	// start, the reload is rolled back to c2.
	c3 := strings.Replace(b.good, "timeout client 30s", "timeout client 49s", 1)
	j3 := post(c3, "4s")
	b.systemctl(t, "stop", "haguard.service")
	b.systemctl(t, "stop", "haguard-confirm-"+j3.ID+".service")
	if disk() != c3 {
		t.Fatal("the provisional reload is not installed")
	}
	time.Sleep(5 * time.Second)
	b.systemctl(t, "start", "haguard.service")
	for i := 0; disk() != c2; i++ {
		if i > 600 {
			t.Fatalf("the provisional reload past its deadline was not rolled back at start\n%s", b.journal(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var j api.JobView
	for i := 0; ; i++ {
		code, _, data = b.do(t, "GET", "/v1/reloads/"+j3.ID, nil, nil)
		if code != 200 || json.Unmarshal(data, &j) != nil {
			t.Fatalf("GET %s: %d %s", j3.ID, code, data)
		}
		tx, _ := j.Transaction.(map[string]any)
		if tx["outcome"] == "rolled_back" {
			break
		}
		if i > 100 {
			t.Fatalf("the history entry of %s is not rolled_back: %s", j3.ID, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServeRegressions: what held when issue 17 attacked the daemon keeps
// holding, against the real unit: 401 on every route but healthz and
// openapi.json (OPTIONS too), 413 for a body over the limit, 422 for a
// request haguard will not act on (an oversized line among them, not
// 500), and 300 concurrent reloads, each id resolvable, never two
// transactions at once.
func TestServeRegressions(t *testing.T) {
	b := newServeBox(t, "")
	routes := [][2]string{
		{"GET", "/v1/status"}, {"POST", "/v1/check"}, {"POST", "/v1/reloads"}, {"GET", "/v1/reloads"},
		{"GET", "/v1/reloads/x"}, {"POST", "/v1/reloads/x/confirm"}, {"POST", "/v1/rollback"}, {"GET", "/v1/ghosts"},
		{"POST", "/v1/probes"}, {"GET", "/metrics"}, {"OPTIONS", "/v1/reloads"}, {"OPTIONS", "/v1/status"},
	}
	for _, r := range routes {
		code, _, data := b.do(t, r[0], r[1], nil, map[string]string{"Authorization": "Bearer wrong-token-wrong-token"})
		if code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong token: %d %s", r[0], r[1], code, data)
		}
	}
	for _, p := range []string{"/v1/healthz", "/v1/openapi.json"} {
		if code, _, _ := b.do(t, "GET", p, nil, map[string]string{"Authorization": ""}); code != 200 {
			t.Errorf("GET %s without a token: %d", p, code)
		}
	}
	big := strings.Repeat("#", 5<<20)
	if code, _, data := b.do(t, "POST", "/v1/reloads", strings.NewReader(big), nil); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 5 MiB body: %d %.200s", code, data)
	}
	long := "global\n    log " + strings.Repeat("x", 1100<<10) + "\n"
	for _, p := range []string{"/v1/check", "/v1/reloads"} {
		if code, _, data := b.do(t, "POST", p, strings.NewReader(long), nil); code != http.StatusUnprocessableEntity {
			t.Errorf("POST %s with a 1.1 MB line: %d %.300s", p, code, data)
		}
	}
	if code, _, data := b.do(t, "POST", "/v1/rollback", strings.NewReader(`{"to":"../etc"}`), nil); code != http.StatusUnprocessableEntity {
		t.Errorf("a rollback to a path: %d %s", code, data)
	}

	b.concurrentReloads(t, 300)
}
