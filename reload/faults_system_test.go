package reload_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// Issue 16: nothing lost under faults. The helpers here put the state dir
// on a small tmpfs mounted inside the box (private to its mount
// namespace: the host reads it through HostPath), fill it at a chosen
// stage, and start a reload paused at a stage.

// stateOnTmpfs mounts a tmpfs of size (e.g. "1m") on the box's state dir.
func (b *box) stateOnTmpfs(t *testing.T, size string) {
	t.Helper()
	if _, _, err := b.s.Run(t.Context(), "sh", "-c", "mkdir -p "+b.state+" && mount -t tmpfs -o size="+size+" tmpfs "+b.state); err != nil {
		t.Fatalf("state dir on tmpfs: %v", err)
	}
}

// fillState fills the state dir's tmpfs to the last block.
func (b *box) fillState(t *testing.T) {
	t.Helper()
	// cat stops at ENOSPC and fails: that is the point.
	_, _, _ = b.s.Run(t.Context(), "sh", "-c", "cat /dev/zero > "+filepath.Join(b.state, "fill"))
	if _, _, err := b.s.Run(t.Context(), "sh", "-c", "echo x > "+filepath.Join(b.state, "probe-full")); err == nil {
		t.Fatal("setup: the state dir still takes writes")
	}
}

// unfillState frees the state dir again.
func (b *box) unfillState(t *testing.T) {
	t.Helper()
	if _, _, err := b.s.Run(t.Context(), "rm", "-f", filepath.Join(b.state, "fill"), filepath.Join(b.state, "probe-full"), filepath.Join(b.state, "journal.hold")); err != nil {
		t.Fatal(err)
	}
}

// stateFile is the host path of a file in the box's state dir (which may
// be a tmpfs only the box sees).
func (b *box) stateFile(name string) string { return b.s.HostPath(filepath.Join(b.state, name)) }

// pausedReload starts `haguard reload args...` paused (for d) once stage
// is journaled, and waits until it is there.
func (b *box) pausedReload(t *testing.T, stage string, d time.Duration, args ...string) *testbed.Proc {
	t.Helper()
	argv := []string{"env", "HAGUARD_TEST_PAUSE_AT=" + stage, "HAGUARD_TEST_PAUSE_FOR=" + d.String(),
		b.bin, "--config-file", b.yaml, "reload"}
	p := b.s.Start(t, append(argv, args...)...)
	for i := 0; !strings.Contains(p.Output(), "HAGUARD_TEST_PAUSED "+stage); i++ {
		if i > 600 || !p.Alive() {
			t.Fatalf("never paused at %s: %s", stage, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// exitCode is a finished Proc's exit code.
func exitCode(t *testing.T, p *testbed.Proc) int {
	t.Helper()
	err := p.Err()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("run: %v", err)
	return -1
}

// Item 1: the state dir fills up just after install. The informational
// journal writes that follow must not abort the run, and the rollback
// must restore the file before (not after) writing its record: the host
// ends with the old config on disk and running, and the run says which
// records it could not write.
func TestSystemFullStateDirAfterInstallRestoresFirst(t *testing.T) {
	b := newBox(t)
	b.stateOnTmpfs(t, "1m")
	dead := b.candidate(t, "dead.cfg", testbed.TCPProxyConfig(b.listen, testbed.DeadAddr(t)))
	p := b.pausedReload(t, reload.StageReload, 2*time.Second, "--candidate", dead)
	b.fillState(t)
	code := exitCode(t, p)
	out := p.Output()
	t.Logf("reload with the state dir full: exit %d\n%s", code, out)
	if b.disk(t) != b.good {
		t.Fatalf("the unverified candidate stayed on disk (exit %d)", code)
	}
	if code != 1 || !strings.Contains(out, "ROLLED BACK") {
		t.Fatalf("exit %d, want 1 and ROLLED BACK", code)
	}
	if !strings.Contains(out, "not recorded") || !strings.Contains(out, "no space left on device") {
		t.Fatal("the records that could not be written are not reported")
	}
	if ok, fail := b.traffic(t); fail != 0 {
		t.Fatalf("traffic after the rollback: %d OK, %d failed", ok, fail)
	}
	b.unfillState(t)
	if _, code := b.reloadJSON(t, nil); code != 0 {
		t.Fatalf("the next plain reload: exit %d", code)
	}
	if st, _, code := b.haguard(t, nil, "status"); code != 0 {
		t.Fatalf("status once the state dir has room: exit %d\n%s", code, st)
	}
	if _, err := os.Stat(b.stateFile("journal.json")); err == nil {
		t.Fatal("a journal is left behind")
	}
}

// Item 4: a corrupt history blob. history --verify names it; a reload
// holding the same config rewrites it, so the rollback that follows a
// failing candidate still works; a rollback to a corrupt blob is refused
// before anything is touched.
func TestSystemCorruptBlobRepairedAndRefused(t *testing.T) {
	b := newBox(t)
	v2 := testbed.TCPProxyConfig(b.listen, testbed.TCPBackend(t)) + "\n# v2\n"
	if _, code := b.reloadJSON(t, nil, "--candidate", b.candidate(t, "v2.cfg", v2)); code != 0 {
		t.Fatalf("reload v2: exit %d", code)
	}
	es, err := reload.ReadHistory(b.state)
	if err != nil || len(es) != 1 {
		t.Fatalf("history %+v %v", es, err)
	}
	corrupt := func(sum string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(b.state, "history", "blobs", sum), []byte("global\n# torn"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	corrupt(es[0].AfterSHA256) // v2, what runs
	out, _, code := b.haguard(t, nil, "history", "--verify")
	if code != 1 || !strings.Contains(out, "CORRUPT") || !strings.Contains(out, es[0].AfterSHA256) {
		t.Fatalf("history --verify with a corrupt blob: exit %d\n%s", code, out)
	}
	dead := b.candidate(t, "dead.cfg", testbed.TCPProxyConfig(b.listen, testbed.DeadAddr(t)))
	res, code := b.reloadJSON(t, nil, "--candidate", dead)
	if code != 1 || !res.RolledBack || b.disk(t) != v2 {
		t.Fatalf("a failing candidate over a corrupt blob of what runs: exit %d, rolled back %v, v2 on disk %v", code, res.RolledBack, b.disk(t) == v2)
	}
	if out, _, code := b.haguard(t, nil, "history", "--verify"); code != 0 {
		t.Fatalf("history --verify after the repair: exit %d\n%s", code, out)
	}
	corrupt(es[0].BeforeSHA256) // the config before v2: a rollback target
	before := b.showProc(t).Reloads
	out, errOut, code := b.haguard(t, nil, "rollback", es[0].ID)
	if code != 2 || !strings.Contains(out+errOut, "does not match its sha256") {
		t.Fatalf("rollback to a corrupt blob: exit %d\n%s%s", code, out, errOut)
	}
	if b.disk(t) != v2 || b.showProc(t).Reloads != before {
		t.Fatal("the refused rollback touched the host")
	}
}

// Item 5: a torn journal.json (a power cut mid-write) makes every reload
// exit 3; status must say so too, not exit 0.
func TestSystemStatusReportsTornJournal(t *testing.T) {
	b := newBox(t)
	v2 := testbed.TCPProxyConfig(b.listen, testbed.TCPBackend(t)) + "\n# v2\n"
	if _, code := b.reloadJSON(t, nil, "--candidate", b.candidate(t, "v2.cfg", v2)); code != 0 {
		t.Fatalf("reload v2: exit %d", code)
	}
	if err := os.WriteFile(filepath.Join(b.state, "journal.json"), []byte(`{"id":"20261202T000000.000Z-dead","pid":4`), 0o640); err != nil {
		t.Fatal(err)
	}
	st, _, code := b.haguard(t, nil, "status")
	if code != 3 || !strings.Contains(st, "JOURNAL:    UNREADABLE") || !strings.Contains(st, "--forget-interrupted") {
		t.Fatalf("status with a torn journal: exit %d\n%s", code, st)
	}
	if _, code := b.reloadJSON(t, nil); code != 3 {
		t.Fatalf("reload with a torn journal: exit %d, want 3", code)
	}
	if _, code := b.reloadJSON(t, nil, "--forget-interrupted"); code != 0 {
		t.Fatalf("reload --forget-interrupted: exit %d", code)
	}
	if st, _, code := b.haguard(t, nil, "status"); code != 0 {
		t.Fatalf("status after --forget-interrupted: exit %d\n%s", code, st)
	}
}

// handEdit replaces the target as a person or configuration management
// would (a new file renamed over it).
func (b *box) handEdit(t *testing.T, body string) {
	t.Helper()
	tmp := b.s.HAProxyConfig() + ".hand"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, b.s.HAProxyConfig()); err != nil {
		t.Fatal(err)
	}
}

func shaOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Item 2: the target is replaced during the transaction, before the
// reload job: haproxy loads the edit. The run must not record the
// candidate as running: outcome raced, both identities, exit 1, both
// versions kept; the next plain reload verifies and records what is on
// disk.
func TestSystemEditDuringReloadIsRaced(t *testing.T) {
	b := newBox(t)
	backend := testbed.TCPBackend(t)
	v2 := testbed.TCPProxyConfig(b.listen, backend) + "\n# v2\n"
	edit := testbed.TCPProxyConfig(b.listen, backend) + "\n# edited by hand during the reload\n"
	p := b.pausedReload(t, reload.StageReload, 2*time.Second, "--format", "json", "--candidate", b.candidate(t, "v2.cfg", v2))
	b.handEdit(t, edit)
	code := exitCode(t, p)
	out := p.Output()
	var res reload.Result
	if i := strings.Index(out, "{\n"); i < 0 || json.Unmarshal([]byte(out[i:strings.LastIndex(out, "}")+1]), &res) != nil {
		t.Fatalf("no JSON result: exit %d\n%s", code, out)
	}
	if code != 1 || res.Raced == nil || res.Raced.Installed != shaOf(v2) || res.Raced.OnDisk != shaOf(edit) {
		t.Fatalf("exit %d, raced %+v; want 1 and installed %s, on disk %s\n%s", code, res.Raced, shaOf(v2)[:12], shaOf(edit)[:12], out)
	}
	es, err := reload.ReadHistory(b.state)
	if err != nil || len(es) != 1 || es[0].Outcome != reload.OutcomeRaced {
		t.Fatalf("history %+v %v", es, err)
	}
	for _, sum := range []string{shaOf(v2), shaOf(edit)} {
		if blob, err := os.ReadFile(filepath.Join(b.state, "history", "blobs", sum)); err != nil || shaOf(string(blob)) != sum {
			t.Fatalf("history lacks a version (%s): %v", sum[:12], err)
		}
	}
	if _, code := b.reloadJSON(t, nil); code != 0 {
		t.Fatalf("the next plain reload: exit %d", code)
	}
	if st, _, code := b.haguard(t, nil, "status"); code != 0 || !strings.Contains(st, shaOf(edit)[:12]) {
		t.Fatalf("status after the next reload: exit %d\n%s", code, st)
	}
}

// Item 3: a file edited during a transaction that then rolls back is
// kept (referenced from the history entry) before the rollback
// overwrites it.
func TestSystemRollbackKeepsConcurrentEdit(t *testing.T) {
	b := newBox(t)
	dead := b.candidate(t, "dead.cfg", testbed.TCPProxyConfig(b.listen, testbed.DeadAddr(t)))
	edit := b.good + "\n# edited by hand during the reload\n"
	p := b.pausedReload(t, reload.StageSweep, 2*time.Second, "--candidate", dead)
	b.handEdit(t, edit)
	code := exitCode(t, p)
	t.Logf("exit %d\n%s", code, p.Output())
	if code != 1 || b.disk(t) != b.good {
		t.Fatalf("exit %d, good config on disk %v; want a rollback", code, b.disk(t) == b.good)
	}
	es, err := reload.ReadHistory(b.state)
	if err != nil || len(es) != 1 || es[0].Outcome != reload.OutcomeRolledBack {
		t.Fatalf("history %+v %v", es, err)
	}
	want := reload.KeptFile{Path: b.s.HAProxyConfig(), SHA256: shaOf(edit)}
	if len(es[0].Kept) != 1 || es[0].Kept[0] != want {
		t.Fatalf("entry kept %+v, want %+v", es[0].Kept, want)
	}
	if blob, err := os.ReadFile(filepath.Join(b.state, "history", "blobs", want.SHA256)); err != nil || string(blob) != edit {
		t.Fatalf("the edit is not kept: %v", err)
	}
}

// Item 6: SIGHUP (a dropped SSH session) during install..commit is
// handled like SIGTERM: the run rolls back, so a failing candidate does
// not keep serving, and it leaves no journal behind.
func TestSystemSIGHUPRollsBack(t *testing.T) {
	b := newBox(t)
	dead := b.candidate(t, "dead.cfg", testbed.TCPProxyConfig(b.listen, testbed.DeadAddr(t)))
	p := b.pausedReload(t, reload.StageSettle, 2*time.Minute, "--candidate", dead)
	if err := syscall.Kill(p.HostPID, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	code := exitCode(t, p)
	t.Logf("exit %d\n%s", code, p.Output())
	if code != 1 || !strings.Contains(p.Output(), "ROLLED BACK") || b.disk(t) != b.good {
		t.Fatalf("SIGHUP at settle: exit %d, the good config on disk %v; want a rollback, exit 1", code, b.disk(t) == b.good)
	}
	if _, err := os.Stat(filepath.Join(b.state, "journal.json")); err == nil {
		t.Fatal("a journal is left behind")
	}
	if ok, fail := b.traffic(t); fail != 0 {
		t.Fatalf("traffic after the rollback: %d OK, %d failed", ok, fail)
	}
	if st, _, code := b.haguard(t, nil, "status"); code != 0 {
		t.Fatalf("status: exit %d\n%s", code, st)
	}
}

// Item 10: the state dir fills up at commit, after the candidate was
// verified. The run cannot record it (exit 3), but the next plain reload
// must adopt it, not roll it back as a run that died at stage probe.
func TestSystemUnrecordedCommitAdopted(t *testing.T) {
	b := newBox(t)
	b.stateOnTmpfs(t, "1m")
	v2 := testbed.TCPProxyConfig(b.listen, testbed.TCPBackend(t)) + "\n# v2\n"
	p := b.pausedReload(t, "commit", 2*time.Second, "--candidate", b.candidate(t, "v2.cfg", v2))
	// A second link keeps the journal's page when the commit renames a
	// journal over it: nothing the run does frees space.
	if _, _, err := b.s.Run(t.Context(), "ln", filepath.Join(b.state, "journal.json"), filepath.Join(b.state, "journal.hold")); err != nil {
		t.Fatal(err)
	}
	b.fillState(t)
	code := exitCode(t, p)
	t.Logf("reload with the state dir full at commit: exit %d\n%s", code, p.Output())
	if code != 3 || b.disk(t) != v2 {
		t.Fatalf("exit %d, v2 on disk %v; want 3 and v2", code, b.disk(t) == v2)
	}
	b.unfillState(t)
	res, code := b.reloadJSON(t, nil)
	if code != 0 || len(res.Stages) == 0 || res.Stages[0].Name != reload.StageRecover || !strings.Contains(res.Stages[0].Detail, "adopted as running") {
		t.Fatalf("the next reload: exit %d, stages %+v", code, res.Stages)
	}
	if b.disk(t) != v2 || res.RolledBack {
		t.Fatal("the verified commit was rolled back")
	}
	if st, _, code := b.haguard(t, nil, "status"); code != 0 || !strings.Contains(st, shaOf(v2)[:12]) {
		t.Fatalf("status: exit %d\n%s", code, st)
	}
}

// auditOutcomes reads audit.log's lines: outcome and first stage name.
func auditLines(t *testing.T, state string) []reload.AuditRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "audit.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []reload.AuditRecord
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var r reload.AuditRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// Item 8: runs refused before they start (the lock busy, systemd
// unreachable) write an audit line too, so automation sees them.
func TestSystemRefusedBeforeStartIsAudited(t *testing.T) {
	b := newBox(t)
	y, err := os.ReadFile(b.yaml)
	if err != nil {
		t.Fatal(err)
	}
	b.s.WriteFiles(t, map[string]string{b.yaml: strings.Replace(string(y), "reload:\n", "reload:\n  lock: fail\n", 1)})
	p := b.pausedReload(t, reload.StageSettle, 5*time.Second, "--candidate", b.candidate(t, "v2.cfg", b.good+"# v2\n"))
	_, errOut, code := b.haguard(t, nil, "reload", "--reason", "while locked")
	if code != 1 {
		t.Fatalf("a reload while the lock is held: exit %d\n%s", code, errOut)
	}
	if code := exitCode(t, p); code != 0 {
		t.Fatalf("the first reload: exit %d\n%s", code, p.Output())
	}
	// systemd's bus gone: the run cannot start at all.
	if _, err := b.s.Systemctl(t.Context(), "stop", "dbus.socket", "dbus.service"); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = b.haguard(t, nil, "reload", "--reason", "no bus")
	if code != 1 {
		t.Fatalf("a reload without D-Bus: exit %d\n%s", code, errOut)
	}
	var refused []reload.AuditRecord
	for _, r := range auditLines(t, b.state) {
		if r.Outcome == reload.OutcomeRefused {
			refused = append(refused, r)
		}
	}
	if len(refused) != 2 || refused[0].Reason != "while locked" || refused[1].Reason != "no bus" {
		t.Fatalf("refused audit lines %+v, want the locked run and the one without a bus", refused)
	}
	for _, r := range refused {
		if r.Result.ID == "" || len(r.Result.Stages) != 1 || r.Result.Stages[0].Name != reload.StageStart || r.Result.Stages[0].Error == "" {
			t.Fatalf("refused line %+v: want an id and why as its start stage", r.Result)
		}
	}
	out, _, code := b.haguard(t, nil, "history")
	if code != 0 || !strings.Contains(out, "start: ") {
		t.Fatalf("history does not list the refused runs: exit %d\n%s", code, out)
	}
}

// Item 9: a running unit whose master CLI socket is gone is refused at
// once with the unit's state, not after settle_timeout with a message
// about the master CLI alone. (A stopped unit: cli's
// TestStoppedHAProxyIsSaidAtOnce; a unit without -S:
// TestSystemRHELUnitWithoutMasterCLI.)
func TestSystemMissingMasterSocketSaidAtOnce(t *testing.T) {
	b := newBox(t)
	if _, _, err := b.s.Run(t.Context(), "rm", "-f", "/run/haproxy-master.sock"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	out, errOut, code := b.haguard(t, nil, "reload", "--candidate", b.candidate(t, "v2.cfg", b.good+"# v2\n"))
	took := time.Since(begin)
	errOut = out + errOut
	t.Logf("exit %d after %s\n%s", code, took, errOut)
	if code != 1 || !strings.Contains(errOut, "unit haproxy.service is active (running") || !strings.Contains(errOut, "master CLI socket does not exist") {
		t.Fatalf("want a refusal naming the unit's state and the missing socket")
	}
	if took > 8*time.Second { // settle_timeout is 10s in these tests
		t.Fatalf("refused after %s: it waited for the settle timeout", took)
	}
	if b.disk(t) != b.good {
		t.Fatal("the refused run touched the config")
	}
}
