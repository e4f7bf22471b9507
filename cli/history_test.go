package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haguard/haguard/reload"
)

// historyState writes a state dir as reload leaves it after a commit and
// then a refused reload: one history entry, two audit lines (the refused
// run never reached the snapshot stage, so it has no entry).
func historyState(t *testing.T) (cfgFile, committed, refused string) {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(filepath.Join(state, "history"), 0o750); err != nil {
		t.Fatal(err)
	}
	committed, refused = "20261128T010000.000Z-aaaa", "20261128T020000.000Z-bbbb"
	before, after := strings.Repeat("1", 64), strings.Repeat("2", 64)
	entry := `{"id":"` + committed + `","time":"2026-11-28T01:00:00Z","who":"alice","reason":"bump","target":"/etc/haproxy/haproxy.cfg",` +
		`"before_sha256":"` + before + `","after_sha256":"` + after + `","outcome":"committed","duration_ms":900}`
	audit := `{"time":"2026-11-28T01:00:00Z","who":"alice","reason":"bump","target":"/etc/haproxy/haproxy.cfg","outcome":"committed",` +
		`"before_sha256":"` + before + `","after_sha256":"` + after + `","result":{"id":"` + committed + `","ok":true,"stages":[{"name":"check","ok":true}],"duration_ms":900}}` + "\n" +
		`{"time":"2026-11-28T02:00:00Z","who":"bob","reason":"typo fix","target":"/etc/haproxy/haproxy.cfg","outcome":"refused",` +
		`"before_sha256":"","after_sha256":"","result":{"id":"` + refused + `","ok":false,"stages":[{"name":"check","ok":false,` +
		`"error":"haproxy -c refused the config: [NOTICE]   (1) : haproxy version is 2.6.12-1+deb12u4; [NOTICE]   (1) : path to executable is /usr/sbin/haproxy; ` +
		`[ALERT]    (1) : config : parsing [x.cfg:3] : unknown keyword 'frontendd' in 'global' section"}],"duration_ms":40}}` + "\n"
	for name, body := range map[string]string{
		filepath.Join(state, "history", committed+".json"): entry,
		filepath.Join(state, "audit.log"):                  audit,
	} {
		if err := os.WriteFile(name, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile = filepath.Join(dir, "haguard.yaml")
	// The bus points nowhere: history and a refused rollback need no systemd.
	yaml := "state_dir: " + state + "\nsystemd:\n  bus_address: unix:path=" + filepath.Join(dir, "no-bus") + "\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o640); err != nil {
		t.Fatal(err)
	}
	return cfgFile, committed, refused
}

func TestHistoryShowsRefused(t *testing.T) {
	cfg, committed, refused := historyState(t)
	code, out, errOut := runHaguard(t, "history", "--config-file", cfg)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "ERROR") ||
		!strings.HasPrefix(lines[1], committed) || !strings.HasPrefix(lines[2], refused) {
		t.Fatalf("want a header, the commit, then the refused run:\n%s", out)
	}
	for _, want := range []string{"bob", "refused", "typo fix", "check: haproxy -c: x.cfg:3: error: unknown keyword 'frontendd' in 'global' section"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("refused row lacks %q: %s", want, lines[2])
		}
	}
	if f := strings.Fields(lines[2]); f[5] != "-" || f[6] != "-" {
		t.Errorf("refused row shows a snapshot: %s", lines[2])
	}

	code, out, _ = runHaguard(t, "history", "--config-file", cfg, "--format", "json")
	var es []map[string]any
	if err := json.Unmarshal([]byte(out), &es); err != nil || code != exitOK || len(es) != 2 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if e := es[1]; e["id"] != refused || e["outcome"] != "refused" || e["before_sha256"] != "" || e["after_sha256"] != "" ||
		e["reason"] != "typo fix" || !strings.HasPrefix(e["error"].(string), "check: haproxy -c refused") {
		t.Fatalf("refused entry %v", e)
	}
	if e := es[0]; e["error"] != "" {
		t.Fatalf("committed entry %v, want \"error\":\"\"", e)
	}

	code, out, _ = runHaguard(t, "history", "--config-file", cfg, "--limit", "1", "--format", "json")
	if err := json.Unmarshal([]byte(out), &es); err != nil || code != exitOK || len(es) != 1 || es[0]["id"] != refused {
		t.Fatalf("--limit 1: exit %d %v %s", code, err, out)
	}
}

func TestHistoryUsage(t *testing.T) {
	cfg, _, _ := historyState(t)
	code, _, errOut := runHaguard(t, "history", "--config-file", cfg, "--limit", "-1")
	if code != exitUsage || !strings.Contains(errOut, "--limit: must not be negative") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	empty := filepath.Join(t.TempDir(), "haguard.yaml")
	if err := os.WriteFile(empty, []byte("state_dir: "+filepath.Join(t.TempDir(), "none")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runHaguard(t, "history", "--config-file", empty)
	if code != exitOK || !strings.HasPrefix(out, "no transaction in ") {
		t.Fatalf("empty history: exit %d %q", code, out)
	}
	code, out, _ = runHaguard(t, "history", "--config-file", empty, "--format", "json")
	if code != exitOK || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty history json: exit %d %q", code, out)
	}
}

// TestRollbackNotATarget: rollback of a refused, unknown or malformed id
// is a usage error (exit 2) that names the problem, decided from the
// state dir before systemd is contacted (the bus here points nowhere,
// which would be exit 1).
func TestRollbackNotATarget(t *testing.T) {
	cfg, _, refused := historyState(t)
	for _, tc := range []struct{ id, want string }{
		{refused, "transaction " + refused + " was refused (check: haproxy -c refused the config"},
		{"20991231T000000.000Z-ffff", "no transaction 20991231T000000.000Z-ffff in "},
		{"../etc/passwd", "is not a transaction id"},
	} {
		code, out, errOut := runHaguard(t, "rollback", tc.id, "--config-file", cfg)
		if code != exitUsage || !strings.Contains(errOut, tc.want) || !strings.HasPrefix(errOut, "haguard rollback: ") {
			t.Errorf("rollback %s: exit %d, stderr %q (stdout %q); want exit 2 and %q", tc.id, code, errOut, out, tc.want)
		}
	}
	if _, err := reload.RollbackTarget(filepath.Join(filepath.Dir(cfg), "state"), ""); err != nil {
		t.Errorf("the commit is still the default target: %v", err)
	}
}
