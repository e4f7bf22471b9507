package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Policy is what a candidate config may bring (docs/security.md). It
// lives in haguard.yaml, root's file: an API token cannot change it.
type Policy struct {
	// CLI applies the policy to candidates given on the command line
	// (haguard reload --candidate) too. API candidates always pass it.
	CLI bool `yaml:"cli"`
	// AllowedPaths are the directories (or files) a config may read and
	// serve files from: maps, ACL files, errorfiles, Lua. The directories
	// of haproxy.configs are always added.
	AllowedPaths []string `yaml:"allowed_paths"`
	// CertPaths are where TLS material (crt, crt-list, ca-file, crl-file,
	// ...) may also be read from. Nothing under them may be served to
	// clients (errorfile, http-request return file).
	CertPaths []string `yaml:"cert_paths"`
	// RuntimePaths are where haproxy may create unix sockets, a pidfile,
	// ring backing files and its chroot, and the unix sockets it may
	// connect to.
	RuntimePaths []string `yaml:"runtime_paths"`
	// Allow are lines allowed on purpose even when the running config
	// does not have them: the line's words joined by one space, where *
	// matches any run of characters ("lua-load /etc/haproxy/lua/*.lua",
	// "program logship", "command /usr/local/bin/logship *").
	Allow []string `yaml:"allow"`
}

// DefaultPolicy is Debian's layout: configs, errorfiles and certificates
// under /etc/haproxy, the CA store and private keys under /etc/ssl
// (Debian's haproxy.cfg sets ca-base and crt-base there), sockets under
// /run/haproxy and the chroot /var/lib/haproxy.
func DefaultPolicy() Policy {
	return Policy{
		CLI:          true,
		AllowedPaths: []string{"/etc/haproxy", "/usr/share/haproxy"},
		CertPaths: []string{"/etc/haproxy/certs", "/etc/haproxy/ssl", "/etc/ssl/certs", "/etc/ssl/private",
			"/etc/letsencrypt/live", "/etc/letsencrypt/archive", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates"},
		RuntimePaths: []string{"/run/haproxy", "/var/run/haproxy", "/var/lib/haproxy"},
		Allow:        []string{},
	}
}

// The bounds of `haproxy -c` (haproxy.check_*).
const (
	DefaultCheckTimeout = 60 * time.Second
	DefaultCheckMemory  = Size(1 << 30)
	DefaultCheckUser    = "nobody"
)

func (p Policy) validate() []error {
	var errs []error
	for _, l := range []struct {
		name  string
		paths []string
	}{{"allowed_paths", p.AllowedPaths}, {"cert_paths", p.CertPaths}, {"runtime_paths", p.RuntimePaths}} {
		for i, d := range l.paths {
			if !filepath.IsAbs(d) {
				errs = append(errs, fmt.Errorf("policy.%s[%d]: %q is not an absolute path", l.name, i, d))
			} else if filepath.Clean(d) == "/" {
				errs = append(errs, fmt.Errorf("policy.%s[%d]: / would allow every file; name directories", l.name, i))
			}
		}
	}
	for i, a := range p.Allow {
		if strings.TrimSpace(a) == "" || strings.Trim(a, "* ") == "" {
			errs = append(errs, fmt.Errorf("policy.allow[%d]: %q would allow every line; write the line to allow", i, a))
		}
	}
	return errs
}

func (h HAProxy) validateCheck() []error {
	var errs []error
	if h.CheckTimeout <= 0 {
		errs = append(errs, errors.New("haproxy.check_timeout: must be positive (a check that hangs must end)"))
	}
	if h.CheckMemoryMax != UnlimitedSize && h.CheckMemoryMax < 64<<20 {
		errs = append(errs, fmt.Errorf("haproxy.check_memory_max: %s is below 64MiB, too little for haproxy -c", h.CheckMemoryMax))
	}
	if h.CheckUser == "" || h.CheckUser == "root" || h.CheckUser == "0" {
		errs = append(errs, fmt.Errorf("haproxy.check_user: %q: untrusted candidates are checked without root's powers; name an unprivileged user", h.CheckUser))
	}
	return errs
}
