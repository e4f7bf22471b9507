package reload_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	if _, _, err := b.s.Run(t.Context(), "rm", "-f", filepath.Join(b.state, "fill"), filepath.Join(b.state, "probe-full")); err != nil {
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
