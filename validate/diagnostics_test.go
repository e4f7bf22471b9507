package validate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
)

// Output of Debian 12's haproxy 2.6.12 for broken configs, verbatim.
const (
	out26Keyword = `[NOTICE]   (6406) : haproxy version is 2.6.12-1+deb12u4
[NOTICE]   (6406) : path to executable is /usr/sbin/haproxy
[ALERT]    (6406) : config : parsing [broken.cfg:12] : unknown keyword 'bogus_keyword' in 'frontend' section
[ALERT]    (6406) : config : [broken.cfg:16] : 'server be/s1' : unknown keyword 'wibble'.
[ALERT]    (6406) : config : Error(s) found in configuration file : broken.cfg
[ALERT]    (6406) : config : Fatal errors found in configuration.
`
	out26Backend = `[NOTICE]   (13714) : haproxy version is 2.6.12-1+deb12u4
[NOTICE]   (13714) : path to executable is /usr/sbin/haproxy
[ALERT]    (13714) : config : Proxy 'fe': unable to find required default_backend: 'nope'.
[ALERT]    (13714) : config : Fatal errors found in configuration.
`
	out26Warnings = `[NOTICE]   (13717) : haproxy version is 2.6.12-1+deb12u4
[NOTICE]   (13717) : path to executable is /usr/sbin/haproxy
[WARNING]  (13717) : config : missing timeouts for frontend 'fe'.
   | While not properly invalid, you will certainly encounter various problems
   | with such a configuration. To fix this, please ensure that all following
   | timeouts are set to a non-zero value: 'client', 'connect', 'server'.
Configuration file is valid
`
	// An older haproxy's head: date and pid, no context.
	out18 = `[ALERT] 123/045612 (77) : parsing [/etc/haproxy/haproxy.cfg:3] : unknown keyword 'x' in 'global' section
`
)

func TestParseDiagnostics(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      []string
	}{
		{"keyword", out26Keyword, []string{
			"broken.cfg:12: error: unknown keyword 'bogus_keyword' in 'frontend' section",
			"broken.cfg:16: error: 'server be/s1' : unknown keyword 'wibble'.",
		}},
		// The summary is all there is besides the line without a position.
		{"backend", out26Backend, []string{"error: Proxy 'fe': unable to find required default_backend: 'nope'."}},
		{"warnings", out26Warnings, []string{"warning: missing timeouts for frontend 'fe'."}},
		{"old head", out18, []string{"/etc/haproxy/haproxy.cfg:3: error: unknown keyword 'x' in 'global' section"}},
		{"twice", out26Backend + out26Backend, []string{"error: Proxy 'fe': unable to find required default_backend: 'nope'."}},
		{"summary only", "[ALERT]    (1) : config : Fatal errors found in configuration.\n", []string{"error: Fatal errors found in configuration."}},
		{"nothing", "Configuration file is valid\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range ParseDiagnostics(tc.out) {
				got = append(got, d.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
	ds := ParseDiagnostics(out26Warnings)
	if want := "While not properly invalid, you will certainly encounter various problems with such a configuration. To fix this, please ensure that all following timeouts are set to a non-zero value: 'client', 'connect', 'server'."; ds[0].Detail != want {
		t.Fatalf("detail %q", ds[0].Detail)
	}
	if e, w := CountDiagnostics(ParseDiagnostics(out26Keyword + out26Warnings)); e != 2 || w != 1 {
		t.Fatalf("count %d errors %d warnings", e, w)
	}
}

// TestCheckCountsHAProxyAlerts runs the real haproxy: a config that only
// haproxy refuses fails the check with its alerts counted, each once.
func TestCheckCountsHAProxyAlerts(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	f := filepath.Join(t.TempDir(), "broken.cfg")
	cfg := "defaults\n\tmode http\n\ttimeout connect 5s\n\ttimeout client 30s\n\ttimeout server 30s\n\nfrontend fe\n\tbind 127.0.0.1:8080\n\tbogus_keyword foo\n\tdefault_backend be\n\nbackend be\n\tserver s1 127.0.0.1:9 wibble\n"
	if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(context.Background(), Options{Files: []string{f}, HAProxyBin: testbed.HAProxyBin()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Summary.HAProxyErrors != 2 || len(rep.Syntax.Diagnostics) != 2 {
		t.Fatalf("ok %v summary %+v diagnostics %+v", rep.OK, rep.Summary, rep.Syntax.Diagnostics)
	}
	d := rep.Syntax.Diagnostics[0]
	if d.File != f || d.Line != 9 || d.Severity != SevError {
		t.Fatalf("first diagnostic %+v", d)
	}
}
