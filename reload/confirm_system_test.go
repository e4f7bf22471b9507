package reload_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// Tier 3: reload --confirm-within in the box. Each reload runs in a shell
// of its own session, which gets SIGHUP once the reload returned (the
// operator's SSH session going away): the window is kept by a transient
// systemd unit, not by that shell.

// provisionalReload runs `haguard reload --candidate cand --confirm-within
// window` in a session of its own, hangs that session up once the reload
// printed its result, and returns the result.
func provisionalReload(t *testing.T, b *box, cand string, window time.Duration) reload.Result {
	t.Helper()
	script := fmt.Sprintf("%s --config-file %s --format json reload --candidate %s --confirm-within %s; echo RC=$?; exec sleep 600",
		b.bin, b.yaml, cand, window)
	p := b.s.Start(t, "setsid", "sh", "-c", script)
	for i := 0; !strings.Contains(p.Output(), "RC="); i++ {
		if i > 1200 || !p.Alive() {
			t.Fatalf("the reload never returned:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := p.Output()
	if !strings.Contains(out, "RC=0") {
		t.Fatalf("provisional reload failed:\n%s", out)
	}
	var res reload.Result
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):strings.LastIndex(out, "}")+1]), &res); err != nil {
		t.Fatalf("reload JSON: %v\n%s", err, out)
	}
	if res.Pending == nil || res.Pending.Watcher == "" {
		t.Fatalf("no confirmation window: %+v", res)
	}
	// The session goes away: SIGHUP to its process group (sh and sleep).
	pgid, err := syscall.Getpgid(p.HostPID)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-pgid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session survived its SIGHUP")
	}
	if st, _ := b.s.Systemctl(t.Context(), "is-active", res.Pending.Watcher); strings.TrimSpace(st) != "active" {
		t.Fatalf("watcher %s is %q after the session's SIGHUP", res.Pending.Watcher, st)
	}
	return res
}

// waitWindowClosed waits until reload id's window is closed and returns
// its history entry.
func waitWindowClosed(t *testing.T, b *box, id string, within time.Duration) reload.Entry {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		es, err := reload.ReadHistory(b.state)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.ID == id && e.Confirmation != nil && e.Confirmation.Result != "" {
				return e
			}
		}
		if time.Now().After(deadline) {
			journal, _, _ := b.s.Run(t.Context(), "journalctl", "--no-pager", "-n", "40", "-u", "haguard-confirm-*")
			t.Fatalf("the window of %s is still open after %s\n%s", id, within, journal)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSystemConfirmWithin(t *testing.T) {
	b := newBox(t)
	y, err := os.ReadFile(b.yaml)
	if err != nil {
		t.Fatal(err)
	}
	b.s.WriteFiles(t, map[string]string{b.yaml: strings.Replace(string(y), "reload:\n", "reload:\n  confirm_every: 1s\n", 1)})
	v2 := strings.Replace(b.good, "timeout client", "timeout client 31s\n    #", 1)
	cand2 := b.candidate(t, "v2.cfg", v2)

	t.Run("no confirm rolls back at the deadline", func(t *testing.T) {
		res := provisionalReload(t, b, cand2, 8*time.Second)
		if b.disk(t) != v2 {
			t.Fatal("v2 is not installed during the window")
		}
		out, _, code := b.haguard(t, nil, "reload", "--candidate", cand2, "--force")
		if code != 1 || !strings.Contains(out, "awaits confirmation") {
			t.Errorf("a reload during the window: exit %d\n%s", code, out)
		}
		st, _, code := b.haguard(t, nil, "status")
		if code != 0 || !strings.Contains(st, "awaits confirmation until") {
			t.Errorf("status during the window: exit %d\n%s", code, st)
		}
		e := waitWindowClosed(t, b, res.ID, 60*time.Second)
		if e.Outcome != reload.OutcomeRolledBack || e.Confirmation.Result != reload.ConfirmRolledBack ||
			!strings.Contains(e.Confirmation.Reason, "not confirmed within the window") {
			t.Fatalf("entry %+v, confirmation %+v", e, e.Confirmation)
		}
		if b.disk(t) != b.good {
			t.Fatal("the config before the reload is not back on disk")
		}
		if ok, _ := b.trafficN(t, 5); ok != 5 {
			t.Fatal("haproxy does not serve after the rollback")
		}
	})

	t.Run("confirm keeps the change", func(t *testing.T) {
		res := provisionalReload(t, b, cand2, 8*time.Second)
		out, _, code := b.haguard(t, nil, "confirm", res.ID)
		if code != 0 || !strings.Contains(out, "confirmed reload "+res.ID) {
			t.Fatalf("confirm: exit %d\n%s", code, out)
		}
		e := waitWindowClosed(t, b, res.ID, 5*time.Second)
		if e.Outcome != reload.OutcomeCommitted || e.Confirmation.Result != reload.ConfirmConfirmed {
			t.Fatalf("entry %+v", e)
		}
		time.Sleep(time.Until(res.Pending.Deadline.Add(3 * time.Second)))
		if b.disk(t) != v2 {
			t.Fatal("a confirmed reload was rolled back")
		}
		if st, _ := b.s.Systemctl(t.Context(), "is-active", res.Pending.Watcher); strings.TrimSpace(st) == "active" {
			t.Fatalf("the watcher %s still runs after the confirm", res.Pending.Watcher)
		}
	})

	t.Run("a backend dying during the window rolls back early", func(t *testing.T) {
		addr, stop, err := testbed.ListenTCPBackend()
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		v3 := testbed.TCPProxyConfig(b.listen, addr)
		res := provisionalReload(t, b, b.candidate(t, "v3.cfg", v3), 10*time.Minute)
		stop()
		begin := time.Now()
		e := waitWindowClosed(t, b, res.ID, 60*time.Second)
		if e.Outcome != reload.OutcomeRolledBack || !strings.Contains(e.Confirmation.Reason, "degraded during the confirmation window") {
			t.Fatalf("entry %+v, confirmation %+v", e, e.Confirmation)
		}
		t.Logf("rolled back %s after the backend died: %s", time.Since(begin).Round(time.Second), e.Confirmation.Reason)
		if b.disk(t) != v2 {
			t.Fatal("the confirmed v2 is not back on disk")
		}
		if ok, _ := b.trafficN(t, 5); ok != 5 {
			t.Fatal("haproxy does not serve after the rollback")
		}
	})
}
