package validate

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
)

func TestRunSyntaxRealHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	dir := t.TempDir()
	good := writeFile(t, dir, "good.cfg", "defaults\n mode tcp\n timeout connect 5s\n timeout client 1m\n timeout server 1m\nlisten l\n bind 127.0.0.1:18999\n server s 127.0.0.1:1\n")
	bad := writeFile(t, dir, "bad.cfg", "defaults\n mode tcp\n timeout clinet 5s\n")
	warn := writeFile(t, dir, "warn.cfg", "frontend f\n mode tcp\n bind 127.0.0.1:18998\n")
	ctx := context.Background()

	// The output is haproxy's own, verbatim ("Configuration file is
	// valid" from 2.6; nothing from 3.x).
	own, err := exec.Command(testbed.HAProxyBin(), "-c", "-f", good).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c on the good config: %v\n%s", err, own)
	}
	res, err := RunSyntax(ctx, testbed.HAProxyBin(), []string{good})
	if err != nil || !res.OK || res.Output != string(own) {
		t.Fatalf("good config: %+v, %v; haproxy alone says %q", res, err, own)
	}
	res, err = RunSyntax(ctx, testbed.HAProxyBin(), []string{good, bad})
	if err != nil || res.OK || res.ExitCode == 0 || !strings.Contains(res.Output, "clinet") ||
		res.Command != testbed.HAProxyBin()+" -c -f "+good+" -f "+bad {
		t.Fatalf("bad config: %+v, %v", res, err)
	}
	res, err = RunSyntax(ctx, testbed.HAProxyBin(), []string{warn})
	if err != nil || !res.OK || len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "missing timeouts for frontend 'f'") {
		t.Fatalf("warnings not surfaced verbatim: %+v, %v", res, err)
	}
	if _, err := RunSyntax(ctx, filepath.Join(dir, "no-haproxy"), []string{good}); err == nil {
		t.Fatal("a missing binary must be an error")
	}
}

func TestCheckRealHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	ctx := context.Background()
	final := filepath.Join(goldenDir, "seed003_final.cfg")
	rep, err := Check(ctx, Options{Files: []string{final}, HAProxyBin: testbed.HAProxyBin()})
	if err != nil || !rep.OK || !rep.Syntax.OK || rep.Summary.Error != 0 || rep.Config == nil {
		t.Fatalf("seed 003 final: %+v, %v", rep, err)
	}
	rep, err = Check(ctx, Options{Files: []string{final}, HAProxyBin: testbed.HAProxyBin(), FailOn: SevWarning})
	if err != nil || rep.OK || len(rep.Failing(SevWarning)) != rep.Summary.Warning {
		t.Fatalf("fail-on warning: %+v, %v", rep, err)
	}
	over := filepath.Join(goldenDir, "ha004_overflow.cfg")
	rep, err = Check(ctx, Options{Files: []string{over}, HAProxyBin: testbed.HAProxyBin()})
	if err != nil || rep.OK || rep.Syntax.OK || !strings.Contains(rep.Syntax.Output, "timer overflow") || rep.Summary.Error != 1 {
		t.Fatalf("overflow: %+v, %v", rep, err)
	}
	_, err = Check(ctx, Options{Files: []string{final, filepath.Join(t.TempDir(), "nope.cfg")}, HAProxyBin: testbed.HAProxyBin()})
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("unreadable file: %v", err)
	}
}

// TestGoldenConfigsAreValid keeps the goldens honest: every config but the
// overflow one, the refused one and the policy's candidates (po_*, which
// name files this host does not have) passes the real haproxy -c, in the
// goldens' (empty) environment.
func TestGoldenConfigsAreValid(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	cases, _ := filepath.Glob(filepath.Join(goldenDir, "*.cfg"))
	for _, c := range cases {
		res, err := RunSyntaxEnv(context.Background(), testbed.HAProxyBin(), []string{c}, goldenEnv)
		if err != nil {
			t.Fatal(err)
		}
		wantOK := !strings.Contains(c, "ha004_overflow") && !strings.Contains(c, "ha018_refused") && !strings.HasPrefix(filepath.Base(c), "po_")
		if res.OK != wantOK {
			t.Errorf("%s: haproxy -c ok=%v, want %v\n%s", c, res.OK, wantOK, res.Output)
		}
	}
}

// TestRunSyntaxFakeBinary pins how RunSyntax reads a binary's exit status
// and warnings, with a shell script standing in for haproxy (unit tier).
func TestRunSyntaxFakeBinary(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "haproxy")
	script := "#!/bin/sh\necho \"[WARNING]  (1) : config : something odd in $3\"\necho 'Configuration file is valid'\n[ \"$3\" = bad.cfg ] && exit 3\nexit 0\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := RunSyntax(context.Background(), fake, []string{"good.cfg"})
	if err != nil || !res.OK || res.ExitCode != 0 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "good.cfg") {
		t.Fatalf("good: %+v, %v", res, err)
	}
	res, err = RunSyntax(context.Background(), fake, []string{"bad.cfg"})
	if err != nil || res.OK || res.ExitCode != 3 || res.Command != fake+" -c -f bad.cfg" {
		t.Fatalf("bad: %+v, %v", res, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunSyntax(ctx, fake, []string{"good.cfg"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

// TestRunSyntaxCAPreludeSameVerdict runs every golden config through the
// real haproxy with and without the CA prelude: same verdict, same exit
// code, same warnings. It also pins when the prelude must stay out.
func TestRunSyntaxCAPreludeSameVerdict(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx := context.Background()
	bin := testbed.HAProxyBin()
	pid := regexp.MustCompile(`\(\d+\)`)
	cases, _ := filepath.Glob(filepath.Join(goldenDir, "*.cfg"))
	if len(cases) < 10 {
		t.Fatalf("only %d golden configs", len(cases))
	}
	// The httpclient.ssl.* keywords exist only in a build with OpenSSL
	// (Debian's has it); without, every check falls back to plain.
	vv, err := exec.Command(bin, "-vv").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -vv: %v", bin, err)
	}
	tls := strings.Contains(string(vv), "+OPENSSL")
	for _, c := range cases {
		got, err := RunSyntax(ctx, bin, []string{c})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := runSyntax(ctx, bin, []string{c})
		if err != nil {
			t.Fatal(err)
		}
		if got.OK != plain.OK || got.ExitCode != plain.ExitCode ||
			pid.ReplaceAllString(strings.Join(got.Warnings, "\n"), "") != pid.ReplaceAllString(strings.Join(plain.Warnings, "\n"), "") {
			t.Errorf("%s: with prelude ok=%v exit=%d warnings %q; plain ok=%v exit=%d warnings %q",
				c, got.OK, got.ExitCode, got.Warnings, plain.OK, plain.ExitCode, plain.Warnings)
		}
		if got.Command != plain.Command {
			t.Errorf("%s: command %q, want the plain %q", c, got.Command, plain.Command)
		}
		// A passing config is checked with the prelude; a failing one
		// reports the plain run's own words.
		if got.CAPreloadSkipped != (plain.OK && tls) || (!got.OK && pid.ReplaceAllString(got.Output, "") != pid.ReplaceAllString(plain.Output, "")) {
			t.Errorf("%s: skipped=%v ok=%v output %q, plain output %q", c, got.CAPreloadSkipped, got.OK, got.Output, plain.Output)
		}
	}

	// An explicit httpclient CA is checked for real: the prelude would
	// hide a missing ca-file, so it must not be used, and the verdict is
	// haproxy's own. That verdict differs by version: 2.6 refuses the
	// config ("Fatal errors found", exit 1); 3.0 prints the same ALERTs
	// but passes it (its httpclient init failure is retryable, not fatal)
	// and starts with the httpclient disabled.
	if tls {
		dir := t.TempDir()
		body := "global\n    httpclient.ssl.ca-file " + filepath.Join(dir, "missing-ca.pem") +
			"\ndefaults\n mode tcp\n timeout connect 5s\n timeout client 1m\n timeout server 1m\nlisten l\n bind 127.0.0.1:18997\n server s 127.0.0.1:1\n"
		cfg := writeFile(t, dir, "ca.cfg", body)
		res, err := RunSyntax(ctx, bin, []string{cfg})
		if err != nil || res.CAPreloadSkipped || !strings.Contains(res.Output, "missing-ca.pem") {
			t.Fatalf("explicit httpclient ca-file: %+v, %v", res, err)
		}
		plain, err := runSyntax(ctx, bin, []string{cfg})
		if err != nil || res.OK != plain.OK || res.ExitCode != plain.ExitCode {
			t.Fatalf("explicit httpclient ca-file: ok=%v exit=%d, haproxy's own ok=%v exit=%d (%v)", res.OK, res.ExitCode, plain.OK, plain.ExitCode, err)
		}
		t.Logf("explicit missing httpclient ca-file: haproxy -c ok=%v exit=%d", res.OK, res.ExitCode)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "haguard-prelude-*")); len(left) != 0 {
		t.Fatalf("prelude files left behind: %v", left)
	}
}

// TestRunSyntaxCAPreludeFallback: a binary that does not know the
// prelude's keyword (haproxy before 2.6) gets the plain check, and the
// reported verdict and output are the plain run's (unit tier, a script
// stands in for haproxy).
func TestRunSyntaxCAPreludeFallback(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	calls := filepath.Join(dir, "calls")
	fake := writeFile(t, dir, "haproxy", "#!/bin/sh\necho \"$*\" >> "+calls+"\n"+
		"for a; do if [ -f \"$a\" ] && grep -q httpclient.ssl.verify \"$a\"; then echo \"[ALERT] unknown keyword 'httpclient.ssl.verify'\"; exit 1; fi; done\n"+
		"echo 'Configuration file is valid'\n")
	if err := os.Chmod(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "h.cfg", "defaults\n mode tcp\n")
	res, err := RunSyntax(context.Background(), fake, []string{cfg})
	if err != nil || !res.OK || res.CAPreloadSkipped || strings.Contains(res.Output, "unknown keyword") || res.Command != fake+" -c -f "+cfg {
		t.Fatalf("fallback: %+v, %v", res, err)
	}
	log, _ := os.ReadFile(calls)
	if lines := strings.Split(strings.TrimSpace(string(log)), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "haguard-prelude-") || lines[1] != "-c -f "+cfg {
		t.Fatalf("want a prelude run then a plain one, got %q", log)
	}
	// Keywords from environment variables may name the httpclient: no prelude.
	if err := os.Remove(calls); err != nil {
		t.Fatal(err)
	}
	env := writeFile(t, dir, "env.cfg", "global\n    \"${KW}\" none\n")
	if res, err := RunSyntax(context.Background(), fake, []string{env}); err != nil || !res.OK || res.CAPreloadSkipped {
		t.Fatalf("env keyword: %+v, %v", res, err)
	}
	if log, _ := os.ReadFile(calls); strings.Count(string(log), "\n") != 1 || strings.Contains(string(log), "prelude") {
		t.Fatalf("env keyword must run plain once, got %q", log)
	}
}
