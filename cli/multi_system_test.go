package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// Tier 3, issue 14 item 4: more than one haproxy on a host. The haguard
// binary runs inside the box, as in production.

// ident names one process for good: its host PID and start time.
type ident struct {
	box   int32
	host  int
	start uint64
}

func (b *ghostBox) ident(t *testing.T, boxPID int32) ident {
	t.Helper()
	host, err := b.s.HostPIDOf(int(boxPID))
	if err != nil {
		t.Fatal(err)
	}
	st, err := testbed.StartTime(host)
	if err != nil {
		t.Fatal(err)
	}
	return ident{box: boxPID, host: host, start: st}
}

// same reports whether the process still runs: same PID, same start time.
func (id ident) same() bool {
	st, err := testbed.StartTime(id.host)
	return err == nil && st == id.start
}

// containerLike starts haproxy with cfg (a path) the way a container
// runtime would: in a network namespace of its own, in a
// docker-<64 hex>.scope under system.slice. It returns the process and
// its scope's name once it listens.
func (b *ghostBox) containerLike(t *testing.T, name, cfg string) (*testbed.Proc, string) {
	t.Helper()
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	scope := "docker-" + hex.EncodeToString(id) + ".scope"
	ns := b.s.AddNetns(t, name)
	p := b.s.StartContainerLike(t, scope, ns, testbed.HAProxyBin(), "-db", "-f", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := testbed.WaitListening(ctx, p); err != nil {
		t.Fatalf("container-like haproxy: %v\n%s", err, p.Output())
	}
	return p, scope
}

// haguardReload runs `haguard reload --candidate FILE --format json` in
// the box with a haguard.yaml for haproxy.service (its config, a state
// dir in the run directory, a probe through b.listen).
func (b *ghostBox) haguardReload(t *testing.T, candidate string) (reload.Result, int, string) {
	t.Helper()
	yaml := filepath.Join(b.s.Dir(), "haguard.yaml")
	y := "haproxy:\n  configs: [" + strconv.Quote(b.s.HAProxyConfig()) + "]\nstate_dir: " + strconv.Quote(filepath.Join(b.s.Dir(), "state")) +
		"\nreload:\n  settle_timeout: 10s\n  min_interval: 0s\nprobe:\n  count: 10\n  timeout: 2s\n  targets:\n    - address: " + strconv.Quote(b.listen) +
		"\n      kind: tcp\n      expect: \"hello\"\n"
	if err := os.WriteFile(yaml, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(b.s.Dir(), "candidate.cfg")
	if err := os.WriteFile(path, []byte(candidate), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, errOut, err := b.s.Run(ctx, b.bin, "--config-file", yaml, "--format", "json", "reload", "--candidate", path)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("haguard reload: %v", err)
	}
	var res reload.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("haguard reload (exit %d) printed no JSON: %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errOut)
	}
	t.Logf("haguard reload: exit %d, stages %+v", code, res.Stages)
	return res, code, errOut
}

func stage(res reload.Result, name string) (reload.Stage, bool) {
	for _, s := range res.Stages {
		if s.Name == name {
			return s, true
		}
	}
	return reload.Stage{}, false
}

// TestSystemOtherUnitAndForeignSurviveKill: haproxy@second.service and a
// container-like haproxy in its own network namespace (on the very port
// haproxy.service listens on, in that other namespace) are other-unit and
// foreign; `ghosts` is clean, `ghosts --kill` signals neither (same PID,
// same start time), and `haguard reload` of haproxy.service commits with
// them present.
func TestSystemOtherUnitAndForeignSurviveKill(t *testing.T) {
	b := newGhostBox(t)
	secondListen := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	second := b.s.StartHAProxyInstance(t, "second", testbed.TCPProxyConfig(secondListen, b.backend))
	cfg := filepath.Join(b.s.Dir(), "container.cfg")
	if err := os.WriteFile(cfg, []byte(testbed.TCPProxyConfig(b.listen, "127.0.0.1:9")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctr, scope := b.containerLike(t, "hgc", cfg)

	r, code := b.ghosts(t)
	c := r.Counts
	if code != exitOK || c.Current != 2 || c.OtherUnit != 2 || c.Foreign != 1 || c.Ghost != 0 || c.Conflict != 0 || !r.Clean() {
		t.Fatalf("exit %d, counts %+v: %+v", code, c, r.Processes)
	}
	var others []ident
	var ownNS uint64
	for _, p := range r.Processes {
		switch p.Class {
		case procs.Current:
			ownNS = p.Netns
		case procs.OtherUnit:
			if p.Unit != second || p.Cgroup != "/system.slice/system-haproxy.slice/"+second || !strings.Contains(p.Reason, "belongs to "+second) {
				t.Errorf("other unit: %+v", p)
			}
			others = append(others, b.ident(t, p.PID))
		case procs.Foreign:
			if p.PID != int32(ctr.BoxPID) || p.Unit != scope || p.Cgroup != "/system.slice/"+scope ||
				len(p.Listen) != 1 || p.Listen[0] != b.listen || !strings.Contains(p.Reason, "in another network namespace") {
				t.Errorf("container-like haproxy (box pid %d): %+v", ctr.BoxPID, p)
			}
			others = append(others, b.ident(t, p.PID))
		}
	}
	for _, p := range r.Of(procs.Foreign) {
		if p.Netns == 0 || p.Netns == ownNS {
			t.Errorf("foreign netns %d, haproxy.service's %d", p.Netns, ownNS)
		}
	}

	r, code = b.ghosts(t, "--kill", "--grace", "2s")
	if code != exitOK || len(b.kills) != 0 {
		t.Fatalf("--kill: exit %d, kills %+v", code, b.kills)
	}
	time.Sleep(500 * time.Millisecond) // a signal, had one been sent, would have landed
	for _, id := range others {
		if !id.same() {
			t.Errorf("box pid %d (host %d) no longer runs after --kill", id.box, id.host)
		}
	}

	res, code, errOut := b.haguardReload(t, b.good+"\n# a new revision\n")
	if code != exitOK || !res.OK || res.RolledBack {
		t.Fatalf("reload with other units present: exit %d ok %v rolled back %v\n%s", code, res.OK, res.RolledBack, errOut)
	}
	if s, ok := stage(res, reload.StageSweep); !ok || !s.OK || !strings.Contains(s.Detail, "other-unit: 2, foreign: 1") {
		t.Fatalf("sweep stage %+v", s)
	}
	for _, id := range others {
		if !id.same() {
			t.Errorf("box pid %d (host %d) no longer runs after the reload", id.box, id.host)
		}
	}
	if st, _ := b.s.Systemctl(context.Background(), "is-active", second); strings.TrimSpace(st) != "active" {
		t.Errorf("%s is %q", second, st)
	}
}

// TestSystemConflictingUnitNamedNeverKilled: another unit's haproxy bound
// to haproxy.service's address in the same network namespace is a
// conflict: `ghosts` exits 1 and names the unit, `--kill` signals
// nothing, and a reload fails its sweep stage (rolled back).
func TestSystemConflictingUnitNamedNeverKilled(t *testing.T) {
	b := newGhostBox(t)
	unit := b.s.StartHAProxyInstance(t, "conflict", testbed.TCPProxyConfig(b.listen, b.backend))

	r, code := b.ghosts(t)
	if code != exitNegative || r.Counts.Conflict != 1 || r.Counts.OtherUnit != 1 || r.Counts.Ghost != 0 || r.Clean() {
		t.Fatalf("exit %d, counts %+v: %+v", code, r.Counts, r.Processes)
	}
	conflict := r.Of(procs.Conflict)[0]
	if conflict.Unit != unit || len(conflict.Listen) != 1 || conflict.Listen[0] != b.listen ||
		!strings.Contains(conflict.Reason, "stop "+unit+" (systemctl stop "+unit+")") ||
		!strings.Contains(conflict.Reason, "in the same network namespace") {
		t.Fatalf("conflict: %+v", conflict)
	}
	ids := []ident{b.ident(t, conflict.PID), b.ident(t, r.Of(procs.OtherUnit)[0].PID)}

	r, code = b.ghosts(t, "--kill", "--grace", "2s")
	if code != exitNegative || len(b.kills) != 0 || r.Counts.Conflict != 1 {
		t.Fatalf("--kill: exit %d, kills %+v, counts %+v", code, b.kills, r.Counts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := b.s.Run(ctx, b.bin, "ghosts")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitNegative || !strings.Contains(out, "1 conflict: another unit listens on this unit's address; stop "+unit) {
		t.Fatalf("human ghosts: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	for _, id := range ids {
		if !id.same() {
			t.Errorf("box pid %d of %s no longer runs", id.box, unit)
		}
	}

	res, code, _ := b.haguardReload(t, b.good+"\n# a new revision\n")
	s, ok := stage(res, reload.StageSweep)
	if code != exitNegative || !res.RolledBack || !ok || s.OK || !strings.Contains(s.Error, "conflict") || !strings.Contains(s.Error, unit) {
		t.Fatalf("reload beside a conflict: exit %d rolled back %v, sweep %+v", code, res.RolledBack, s)
	}
	for _, id := range ids {
		if !id.same() {
			t.Errorf("box pid %d of %s no longer runs after the reload", id.box, unit)
		}
	}
}
