package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// WebConfig is the Prometheus exporter-toolkit's web configuration file
// (https://prometheus.io/docs/prometheus/latest/configuration/https/),
// which every Prometheus exporter reads with --web.config.file: TLS, client
// certificates, basic auth and response headers for the metrics
// listener. haguard reads the same format itself rather than linking
// exporter-toolkit, whose web package brings client_golang (and oauth2,
// jwt) into the binary (docs/security.md). Keys it does not know, or
// knows but does not implement (rate_limit), are refused, never ignored.
type WebConfig struct {
	TLS   webTLS            `yaml:"tls_server_config"`
	HTTP  webHTTP           `yaml:"http_server_config"`
	Users map[string]string `yaml:"basic_auth_users"`

	dir     string
	tls     *tls.Config
	checker *basicAuth
	headers map[string]string
	noHTTP2 bool
}

type webTLS struct {
	Cert                     string   `yaml:"cert"`
	Key                      string   `yaml:"key"`
	ClientCA                 string   `yaml:"client_ca"`
	CertFile                 string   `yaml:"cert_file"`
	KeyFile                  string   `yaml:"key_file"`
	ClientAuthType           string   `yaml:"client_auth_type"`
	ClientCAFile             string   `yaml:"client_ca_file"`
	CipherSuites             []string `yaml:"cipher_suites"`
	CurvePreferences         []string `yaml:"curve_preferences"`
	MinVersion               string   `yaml:"min_version"`
	MaxVersion               string   `yaml:"max_version"`
	PreferServerCipherSuites *bool    `yaml:"prefer_server_cipher_suites"`
	ClientAllowedSANs        []string `yaml:"client_allowed_sans"`
}

type webHTTP struct {
	HTTP2   *bool             `yaml:"http2"`
	Headers map[string]string `yaml:"headers"`
}

// maxWebConfig bounds what LoadWebConfig reads.
const maxWebConfig = 1 << 20

// LoadWebConfig reads and checks a web configuration file. Relative
// paths in it are relative to the file's directory, as in the toolkit.
func LoadWebConfig(path string) (*WebConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("web config: %w", err)
	}
	if len(b) > maxWebConfig {
		return nil, fmt.Errorf("web config %s: larger than %d bytes", path, maxWebConfig)
	}
	wc, err := ParseWebConfig(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("web config %s: %w", path, err)
	}
	return wc, nil
}

// ParseWebConfig parses a web configuration; dir anchors relative paths.
func ParseWebConfig(b []byte, dir string) (*WebConfig, error) {
	wc := &WebConfig{dir: dir}
	if len(bytes.TrimSpace(b)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(wc); err != nil {
			if strings.Contains(err.Error(), "field rate_limit not found") {
				return nil, errors.New("rate_limit is not supported by haguard's metrics listener")
			}
			return nil, err
		}
	}
	if err := wc.build(); err != nil {
		return nil, err
	}
	return wc, nil
}

func (wc *WebConfig) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(wc.dir, p)
}

// TLSEnabled says whether the listener speaks TLS.
func (wc *WebConfig) TLSEnabled() bool { return wc != nil && wc.tls != nil }

func (wc *WebConfig) build() error {
	if err := wc.buildTLS(); err != nil {
		return fmt.Errorf("tls_server_config: %w", err)
	}
	if wc.HTTP.HTTP2 != nil && !*wc.HTTP.HTTP2 {
		wc.noHTTP2 = true
	}
	wc.headers = map[string]string{}
	for k, v := range wc.HTTP.Headers {
		switch http.CanonicalHeaderKey(k) {
		case "Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options", "X-Xss-Protection", "Content-Security-Policy":
			wc.headers[http.CanonicalHeaderKey(k)] = v
		default:
			return fmt.Errorf("http_server_config.headers: %q is not one the exporter-toolkit allows", k)
		}
	}
	if len(wc.Users) > 0 {
		for u, h := range wc.Users {
			if u == "" || strings.Contains(u, ":") {
				return fmt.Errorf("basic_auth_users: %q is not a user name", u)
			}
			if _, err := bcrypt.Cost([]byte(h)); err != nil {
				return fmt.Errorf("basic_auth_users: %s: not a bcrypt hash: %w", u, err)
			}
		}
		wc.checker = newBasicAuth(wc.Users)
	}
	return nil
}

var tlsVersions = map[string]uint16{"TLS10": tls.VersionTLS10, "TLS11": tls.VersionTLS11, "TLS12": tls.VersionTLS12, "TLS13": tls.VersionTLS13}

var clientAuthTypes = map[string]tls.ClientAuthType{
	"": tls.NoClientCert, "NoClientCert": tls.NoClientCert, "RequestClientCert": tls.RequestClientCert,
	"RequireAnyClientCert": tls.RequireAnyClientCert, "VerifyClientCertIfGiven": tls.VerifyClientCertIfGiven,
	"RequireAndVerifyClientCert": tls.RequireAndVerifyClientCert,
}

var curves = map[string]tls.CurveID{"CurveP256": tls.CurveP256, "CurveP384": tls.CurveP384, "CurveP521": tls.CurveP521,
	"X25519": tls.X25519, "X25519MLKEM768": tls.X25519MLKEM768}

func (wc *WebConfig) buildTLS() error {
	t := wc.TLS
	hasCert := t.Cert != "" || t.CertFile != ""
	hasKey := t.Key != "" || t.KeyFile != ""
	if !hasCert && !hasKey {
		if t.ClientAuthType != "" || t.ClientCAFile != "" || t.ClientCA != "" || len(t.ClientAllowedSANs) > 0 {
			return errors.New("client certificates need TLS: set cert_file and key_file")
		}
		return nil
	}
	switch {
	case !hasCert:
		return errors.New("missing cert_file (or cert)")
	case !hasKey:
		return errors.New("missing key_file (or key)")
	case t.Cert != "" && t.CertFile != "", t.Key != "" && t.KeyFile != "", t.ClientCA != "" && t.ClientCAFile != "":
		return errors.New("give a certificate, key or client CA either inline or as a file, not both")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.MinVersion != "" {
		v, ok := tlsVersions[t.MinVersion]
		if !ok {
			return fmt.Errorf("min_version %q: want TLS10, TLS11, TLS12 or TLS13", t.MinVersion)
		}
		cfg.MinVersion = v
	}
	if t.MaxVersion != "" {
		v, ok := tlsVersions[t.MaxVersion]
		if !ok {
			return fmt.Errorf("max_version %q: want TLS10, TLS11, TLS12 or TLS13", t.MaxVersion)
		}
		cfg.MaxVersion = v
	}
	for _, name := range t.CipherSuites {
		i := slices.IndexFunc(tls.CipherSuites(), func(c *tls.CipherSuite) bool { return c.Name == name })
		if i < 0 {
			return fmt.Errorf("cipher_suites: %q is not a secure TLS 1.2 suite Go knows", name)
		}
		cfg.CipherSuites = append(cfg.CipherSuites, tls.CipherSuites()[i].ID)
	}
	for _, name := range t.CurvePreferences {
		c, ok := curves[name]
		if !ok {
			return fmt.Errorf("curve_preferences: %q: want CurveP256, CurveP384, CurveP521, X25519 or X25519MLKEM768", name)
		}
		cfg.CurvePreferences = append(cfg.CurvePreferences, c)
	}
	auth, ok := clientAuthTypes[t.ClientAuthType]
	if !ok {
		return fmt.Errorf("client_auth_type %q: want NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert", t.ClientAuthType)
	}
	cfg.ClientAuth = auth
	if t.ClientCAFile != "" || t.ClientCA != "" {
		if auth == tls.NoClientCert {
			return errors.New("a client CA is set without a client_auth_type")
		}
		pem := []byte(t.ClientCA)
		if t.ClientCAFile != "" {
			b, err := os.ReadFile(wc.path(t.ClientCAFile))
			if err != nil {
				return fmt.Errorf("client_ca_file: %w", err)
			}
			pem = b
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("client CA: no PEM certificate in it")
		}
		cfg.ClientCAs = pool
	} else if auth == tls.VerifyClientCertIfGiven || auth == tls.RequireAndVerifyClientCert {
		return fmt.Errorf("client_auth_type %s needs client_ca_file", t.ClientAuthType)
	}
	if len(t.ClientAllowedSANs) > 0 {
		if cfg.ClientCAs == nil {
			return errors.New("client_allowed_sans needs a verified client certificate (client_ca_file)")
		}
		allowed := t.ClientAllowedSANs
		cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
			for _, chain := range chains {
				if len(chain) == 0 {
					continue
				}
				c := chain[0]
				sans := append(append(append([]string{}, c.DNSNames...), c.EmailAddresses...), ipStrings(c)...)
				for _, u := range c.URIs {
					sans = append(sans, u.String())
				}
				for _, s := range sans {
					if slices.Contains(allowed, s) {
						return nil
					}
				}
			}
			return errors.New("the client certificate names no SAN of client_allowed_sans")
		}
	}
	// The certificate is read at each handshake, as the toolkit does, so
	// that a renewed one is served without a restart; a broken renewal
	// fails handshakes, not the daemon. It must load now.
	load := func() (*tls.Certificate, error) {
		certPEM, keyPEM := []byte(t.Cert), []byte(t.Key)
		var err error
		if t.CertFile != "" {
			if certPEM, err = os.ReadFile(wc.path(t.CertFile)); err != nil {
				return nil, fmt.Errorf("cert_file: %w", err)
			}
		}
		if t.KeyFile != "" {
			if keyPEM, err = os.ReadFile(wc.path(t.KeyFile)); err != nil {
				return nil, fmt.Errorf("key_file: %w", err)
			}
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("certificate and key: %w", err)
		}
		return &c, nil
	}
	if _, err := load(); err != nil {
		return err
	}
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return load() }
	wc.tls = cfg
	return nil
}

func ipStrings(c *x509.Certificate) []string {
	out := make([]string, 0, len(c.IPAddresses))
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// basicAuth checks users against bcrypt hashes. bcrypt is slow on
// purpose (tens of milliseconds a check); a scraper sends the same
// password every few seconds, so a result is cached by a digest of user,
// hash and password (the password itself is not kept), as the toolkit
// does. An unknown user is checked against a fixed hash, so that the time
// does not tell which users exist.
type basicAuth struct {
	users map[string]string
	mu    sync.Mutex
	cache map[[sha256.Size]byte]bool
}

const basicAuthCacheMax = 128

// dummyHash is a bcrypt hash (cost 10) no password matches, made once.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("haguard-no-such-user"), bcrypt.DefaultCost)
	return h
})

func newBasicAuth(users map[string]string) *basicAuth {
	return &basicAuth{users: users, cache: map[[sha256.Size]byte]bool{}}
}

func (a *basicAuth) ok(user, pass string) bool {
	hash, known := a.users[user]
	key := sha256.Sum256([]byte(user + "\x00" + hash + "\x00" + pass))
	a.mu.Lock()
	res, cached := a.cache[key]
	a.mu.Unlock()
	if cached {
		return res && known
	}
	h := []byte(hash)
	if !known {
		h = dummyHash()
	}
	res = bcrypt.CompareHashAndPassword(h, []byte(pass)) == nil && known
	a.mu.Lock()
	if len(a.cache) >= basicAuthCacheMax {
		clear(a.cache)
	}
	a.cache[key] = res
	a.mu.Unlock()
	return res
}
