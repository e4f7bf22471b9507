package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/haguard/haguard/internal/testbed"
)

func TestParseWebConfigRefusals(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ yaml, want string }{
		"unknown key":        {"tls_server_config:\n  cert_fiel: x\n", "field cert_fiel not found"},
		"unknown top key":    {"basic_auth_user:\n  a: b\n", "field basic_auth_user not found"},
		"rate limit":         {"rate_limit:\n  interval: 1s\n", "rate_limit is not supported"},
		"cert without key":   {"tls_server_config:\n  cert_file: c.pem\n", "missing key_file"},
		"key without cert":   {"tls_server_config:\n  key_file: k.pem\n", "missing cert_file"},
		"client CA, no TLS":  {"tls_server_config:\n  client_ca_file: ca.pem\n", "client certificates need TLS"},
		"not bcrypt":         {"basic_auth_users:\n  prom: plain-password\n", "not a bcrypt hash"},
		"header not allowed": {"http_server_config:\n  headers:\n    Set-Cookie: x\n", "not one the exporter-toolkit allows"},
		"missing cert file":  {"tls_server_config:\n  cert_file: absent.pem\n  key_file: absent.key\n", "no such file"},
	} {
		if _, err := ParseWebConfig([]byte(c.yaml), dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
	}
	wc, err := ParseWebConfig(nil, dir)
	if err != nil || wc.TLSEnabled() || wc.checker != nil {
		t.Fatalf("empty web config: %+v %v", wc, err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	cert, key, pool := testbed.SelfSignedCert(t)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// TestServeMetricsTLSBasicAuth: the metrics listener with a web config
// of TLS and one basic-auth user: the right password scrapes, a wrong one
// or none gets 401, plain HTTP gets no answer, and only /metrics is
// there. A relative cert path is relative to the web config file.
func TestServeMetricsTLSBasicAuth(t *testing.T) {
	dir := t.TempDir()
	_, _, pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(path, []byte("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS12\n"+
		"http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"+
		"basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wc, err := LoadWebConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	ln, err := ListenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.ServeMetrics(ctx, ln, wc) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeMetrics: %v", err)
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(url, user, pass string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		return resp.StatusCode, readAll(t, resp), resp.Header
	}
	base := "https://" + ln.Addr().String()
	code, body, hdr := get(base+"/metrics", "prometheus", "scrape-pass")
	if code != 200 || !strings.Contains(body, "haguard_reloads_total") || hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("scrape with the password: %d %v\n%.200s", code, hdr, body)
	}
	for _, c := range [][2]string{{"prometheus", "wrong"}, {"nobody", "scrape-pass"}, {"", ""}} {
		if code, _, _ := get(base+"/metrics", c[0], c[1]); code != http.StatusUnauthorized {
			t.Errorf("user %q pass %q: %d", c[0], c[1], code)
		}
	}
	if code, _, _ := get(base+"/v1/status", "prometheus", "scrape-pass"); code != http.StatusNotFound {
		t.Errorf("/v1/status on the metrics listener: %d", code)
	}
	// Cached: the second check of the same password costs no bcrypt.
	start := time.Now()
	for range 20 {
		if !wc.checker.ok("prometheus", "scrape-pass") {
			t.Fatal("cached check failed")
		}
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Logf("20 cached checks took %v", d)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ln.Addr().String() + "/metrics")
	if err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP scraped the TLS listener")
	}
	if err == nil {
		resp.Body.Close()
	}
}
