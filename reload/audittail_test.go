package reload

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func recordLine(t *testing.T, id, outcome string) string {
	t.Helper()
	b, err := json.Marshal(AuditRecord{Who: "alice", Outcome: outcome, Result: Result{ID: id, Outcome: outcome}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func ids(rs []AuditRecord) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Result.ID)
	}
	return strings.Join(out, " ")
}

// The tail reads only what was appended after it started, whole lines
// only, and starts over on a rotated or truncated file.
func TestAuditTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, auditFile)
	read := func(a *AuditTail, want string) {
		t.Helper()
		rs, err := a.Read()
		if err != nil || ids(rs) != want {
			t.Fatalf("read %q (%v), want %q", ids(rs), err, want)
		}
	}

	a := NewAuditTail(dir) // no file yet: the first one is read from its start
	read(a, "")
	appendFile(t, path, recordLine(t, "t1", OutcomeCommitted))
	read(a, "t1")
	read(a, "")

	b := NewAuditTail(dir) // an existing file: only what comes after
	line := recordLine(t, "t2", OutcomeRolledBack)
	appendFile(t, path, line[:10]) // a writer mid-line
	read(b, "")
	appendFile(t, path, line[10:]+recordLine(t, "t3", OutcomeRefused))
	read(b, "t2 t3")
	read(a, "t2 t3")

	appendFile(t, path, "not json\n"+recordLine(t, "t4", OutcomeCommitted))
	if rs, err := b.Read(); ids(rs) != "t4" || err == nil || !strings.Contains(err.Error(), "skipped 1 line") {
		t.Fatalf("bad line: %q, %v", ids(rs), err)
	}

	// Rotation: the file is renamed away and a new one started.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	read(b, "")
	appendFile(t, path, recordLine(t, "t5", OutcomeCommitted))
	read(b, "t5")
	// copytruncate: same file, shorter than what was read.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, recordLine(t, "t6", OutcomeUnchanged))
	read(b, "t6")
	if b.Dir() != dir {
		t.Fatalf("Dir %q", b.Dir())
	}
}
