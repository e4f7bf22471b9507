package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
)

const goldenDir = "../testdata/check"

func TestCheckArgs(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(goldenDir, "seed003_final.cfg")
	unitless := filepath.Join(goldenDir, "seed002_unitless_28800.cfg")
	fifty := filepath.Join(goldenDir, "seed002_default_50s.cfg")
	yaml := filepath.Join(dir, "haguard.yaml")
	if err := os.WriteFile(yaml, []byte("haproxy:\n  configs: ["+unitless+"]\n  binary: /nonexistent/haproxy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noCfg := []string{"--config-file", filepath.Join(dir, "absent.yaml")} // explicit and missing: usage error
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings
		stderr []string
	}{
		{name: "final config, no error", args: []string{"check", "--no-syntax", "-f", final}, code: 0,
			stdout: []string{"seed003_final.cfg:3: warning HA010: ", "    fix: ", "haproxy -c: skipped", "haguard check ok: 0 error(s), 1 warning(s), 4 info"}},
		{name: "fail on warning", args: []string{"check", "--no-syntax", "--fail-on", "warning", "-f", final}, code: 1,
			stdout: []string{"haguard check FAILED"}},
		{name: "unitless is an error", args: []string{"check", "--no-syntax", "-f", unitless}, code: 1,
			stdout: []string{"seed002_unitless_28800.cfg:9: error HA001: timeout client 28800 is 28.8 s"}},
		{name: "repeated -f", args: []string{"check", "--no-syntax", "-f", final, "-f", fifty}, code: 0,
			stdout: []string{"seed003_final.cfg:8: info HA016", "seed002_default_50s.cfg:5: info HA010: hard-stop-after 30m", "seed002_default_50s.cfg:12: warning HA006", "2 file(s)"}},
		{name: "-f default from haguard.yaml", args: []string{"check", "--no-syntax", "--config-file", yaml}, code: 1,
			stdout: []string{"seed002_unitless_28800.cfg:9: error HA001"}},
		{name: "--haproxy-bin default from haguard.yaml", args: []string{"check", "--config-file", yaml}, code: 2,
			stderr: []string{"/nonexistent/haproxy"}},
		{name: "unreadable file", args: []string{"check", "--no-syntax", "-f", filepath.Join(dir, "missing.cfg")}, code: 2,
			stderr: []string{"missing.cfg"}},
		{name: "bad fail-on", args: []string{"check", "--fail-on", "info", "-f", final}, code: 2,
			stderr: []string{"--fail-on"}},
		{name: "bad format", args: []string{"check", "--format", "xml", "-f", final}, code: 2,
			stderr: []string{"--format"}},
		{name: "unknown flag", args: []string{"check", "--nope"}, code: 2},
		{name: "positional arg", args: []string{"check", final}, code: 2},
		{name: "missing explicit haguard.yaml", args: append([]string{"check", "-f", final}, noCfg...), code: 2,
			stderr: []string{"absent.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errb.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errb.String())
				}
			}
		})
	}
}

func TestCheckJSONShape(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"check", "--no-syntax", "--format", "json", "-f", filepath.Join(goldenDir, "seed002_unitless_28800.cfg")}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"ok", "files", "syntax", "findings", "summary", "duration_ms"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("missing key %q", k)
		}
	}
	syn := doc["syntax"].(map[string]any)
	for _, k := range []string{"ok", "command", "output", "duration_ms"} {
		if _, ok := syn[k]; !ok {
			t.Errorf("missing syntax.%s", k)
		}
	}
	// --no-syntax: ok stays true for scripts that gate on it, skipped says why.
	if syn["ok"] != true || syn["skipped"] != true || syn["output"] != "skipped (--no-syntax)" {
		t.Errorf("syntax with --no-syntax = %v, want ok and skipped true", syn)
	}
	f := doc["findings"].([]any)[0].(map[string]any)
	want := map[string]any{"rule": "HA001", "severity": "error", "line": float64(9), "section": "defaults"}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("findings[0].%s = %v, want %v", k, f[k], v)
		}
	}
	for _, k := range []string{"message", "fix", "file"} {
		if s, _ := f[k].(string); s == "" {
			t.Errorf("findings[0].%s empty", k)
		}
	}
	if sum := doc["summary"].(map[string]any); sum["error"] != float64(1) || sum["warning"] != float64(2) || sum["info"] != float64(0) {
		t.Errorf("summary = %v", sum)
	}
}

// TestCheckSyntaxSkippedFalseWhenRun is tier 2: when haproxy -c runs,
// syntax.skipped is present and false.
func TestCheckSyntaxSkippedFalseWhenRun(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"check", "--format", "json", "--haproxy-bin", testbed.HAProxyBin(),
		"-f", filepath.Join(goldenDir, "seed003_final.cfg")}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, out.String(), errb.String())
	}
	var doc struct {
		Syntax map[string]any `json:"syntax"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Syntax["ok"] != true || doc.Syntax["skipped"] != false || doc.Syntax["command"] == "" {
		t.Fatalf("syntax = %v, want ok, skipped false and the command", doc.Syntax)
	}
}

// TestCheckSyntaxErrorRealHAProxy is tier 2: the real haproxy refuses the
// config, the exit code is 1 and haproxy's own message is shown.
func TestCheckSyntaxErrorRealHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	cfg := filepath.Join(t.TempDir(), "bad.cfg")
	body := "defaults\n mode tcp\n timeout connect 5s\n timeout client 1m\n timeout server 1m\nlisten l\n bind 127.0.0.1:18997\n server s 127.0.0.1:1 chekc\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"human", "json"} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"check", "--format", format, "--haproxy-bin", testbed.HAProxyBin(), "-f", cfg}, &out, &errb)
		if code != 1 {
			t.Fatalf("%s: exit %d, want 1\n%s%s", format, code, out.String(), errb.String())
		}
		if format == "json" {
			// JSON keeps haproxy's output verbatim, and its diagnostics.
			var doc struct {
				Syntax struct {
					Output      string `json:"output"`
					Diagnostics []struct {
						File, Severity, Message string
						Line                    int
					} `json:"diagnostics"`
				} `json:"syntax"`
				Summary map[string]int `json:"summary"`
			}
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(doc.Syntax.Output, "[ALERT]") || len(doc.Syntax.Diagnostics) != 1 ||
				doc.Syntax.Diagnostics[0].Line != 8 || doc.Summary["haproxy_errors"] != 1 {
				t.Errorf("json: %+v", doc)
			}
			continue
		}
		// Human: nginx -t's shape, each alert once, counted in the summary.
		got := out.String()
		alert := cfg + ":8: error: 'server l/s' : unknown keyword 'chekc'"
		for _, want := range []string{alert, "FAILED (exit 1)", "haguard check FAILED: haproxy -c found 1 error(s); lint: "} {
			if strings.Count(got, want) != 1 {
				t.Errorf("human: %q not printed once:\n%s", want, got)
			}
		}
		if strings.Contains(got, "[ALERT]") || strings.Contains(got, "[NOTICE]") || strings.Contains(got, "FAILED: 0 error(s), 0 warning(s)") {
			t.Errorf("human: raw haproxy lines or a zero count:\n%s", got)
		}
	}
}

// TestCheckFactsFlag proves check owns --facts: its default is facts.mode
// from haguard.yaml, the flag overrides it, a bad mode is a usage error,
// and the fact rules come from the default registry (PA301 needs the
// declared path, which mode none does not gather).
func TestCheckFactsFlag(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(goldenDir, "seed003_final.cfg")
	path := "path:\n  clients:\n    - name: nova\n      kind: sqlalchemy\n      pool_recycle: 1h\n  middleboxes:\n    - name: f5\n      kind: f5-ltm\n      hop: client\n"
	yamlNone := filepath.Join(dir, "none.yaml")
	yamlDecl := filepath.Join(dir, "declared.yaml")
	if err := os.WriteFile(yamlNone, []byte("facts:\n  mode: none\n"+path), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(yamlDecl, []byte("facts:\n  mode: declared\n"+path), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := func(t *testing.T, args ...string) (map[string]bool, int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"check", "--no-syntax", "--format", "json", "-f", final}, args...), &out, &errb)
		got := map[string]bool{}
		var rep struct {
			Findings []struct{ Rule string } `json:"findings"`
		}
		if code != 2 {
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("stdout: %v\n%s", err, out.String())
			}
		}
		for _, f := range rep.Findings {
			got[f.Rule] = true
		}
		return got, code, errb.String()
	}
	for _, tt := range []struct {
		name   string
		args   []string
		pa301  bool
		code   int
		stderr string
	}{
		{name: "facts.mode none from haguard.yaml", args: []string{"--config-file", yamlNone}, code: 0},
		{name: "facts.mode declared from haguard.yaml", args: []string{"--config-file", yamlDecl}, pa301: true, code: 1},
		{name: "--facts declared overrides facts.mode none", args: []string{"--config-file", yamlNone, "--facts", "declared"}, pa301: true, code: 1},
		{name: "--facts none overrides facts.mode declared", args: []string{"--config-file", yamlDecl, "--facts", "none"}, code: 0},
		{name: "bad --facts", args: []string{"--config-file", yamlDecl, "--facts", "maybe"}, code: 2, stderr: `--facts: "maybe" is not none, declared or live`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, code, stderr := rules(t, tt.args...)
			if code != tt.code || got["PA301"] != tt.pa301 {
				t.Fatalf("exit %d (want %d), PA301 %v (want %v), rules %v\n%s", code, tt.code, got["PA301"], tt.pa301, got, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
		})
	}
}
