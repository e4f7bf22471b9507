package systemd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/systemd"
)

// TestClientAgainstRealSystemd (tier 3) talks to the sandbox's systemd
// through its bus socket, by address, from the host: unit properties of a
// running haproxy.service, a reload whose job is "done", a reload whose
// ExecReload fails (a *JobError "failed"), and an unknown unit.
func TestClientAgainstRealSystemd(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	s := testbed.Boot(t)
	listen := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	good := testbed.TCPProxyConfig(listen, testbed.TCPBackend(t))
	s.StartHAProxy(t, good)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := systemd.Dial(ctx, s.BusAddress())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	u, err := c.Unit(ctx, "haproxy.service")
	if err != nil {
		t.Fatal(err)
	}
	if u.ActiveState != "active" || u.SubState != "running" || u.MainPID <= 1 || u.LoadState != "loaded" ||
		u.ControlGroup != "/system.slice/haproxy.service" || u.ExecMainStartTimestamp.IsZero() ||
		time.Since(u.ExecMainStartTimestamp) > time.Hour || u.Name != "haproxy.service" {
		t.Fatalf("unit: %+v", u)
	}
	// State is the same unit's state, read without the rest.
	st, err := c.State(ctx, "haproxy.service")
	if err != nil {
		t.Fatal(err)
	}
	if want := (systemd.Unit{Name: u.Name, LoadState: u.LoadState, ActiveState: u.ActiveState, SubState: u.SubState, MainPID: u.MainPID,
		ControlPID: u.ControlPID, ControlGroup: u.ControlGroup, StatusText: u.StatusText}); fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("State:\n%+v\nwant (Unit's):\n%+v", st, want)
	}
	out, err := s.MasterCLI(ctx, "show proc")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, fmt.Sprintf("%d ", u.MainPID)) {
		t.Fatalf("MainPID %d is not the master in show proc:\n%s", u.MainPID, out)
	}

	if err := c.Reload(ctx, "haproxy.service"); err != nil {
		t.Fatalf("reload: %v", err)
	}

	// ExecReload runs `haproxy -c` first: a config it rejects fails the job.
	s.WriteHAProxyConfig(t, good+"\nfrontend broken\n\tbind-nonsense\n")
	err = c.Reload(ctx, "haproxy.service")
	var je *systemd.JobError
	if !errors.As(err, &je) || je.Result != "failed" || je.Unit != "haproxy.service" || je.Job != "reload" {
		t.Fatalf("reload with a rejected config: got %v (%T), want *JobError failed", err, err)
	}
	// The connection is still usable after a failed job (the result
	// channel was drained).
	s.WriteHAProxyConfig(t, good)
	if err := c.Reload(ctx, "haproxy.service"); err != nil {
		t.Fatalf("reload after the failure: %v", err)
	}
	// The job is "done" once ExecReload (kill -USR2) returns; haproxy
	// (Type=notify) then says RELOADING=1 ... READY=1, so the unit reads
	// "reloading" for a moment after the job: wait for "active".
	var u2 systemd.Unit
	for range 200 {
		if u2, err = c.State(ctx, "haproxy.service"); err != nil || u2.ActiveState != "reloading" {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if err != nil || u2.MainPID != u.MainPID || u2.ActiveState != "active" {
		t.Fatalf("after reloads: %+v, %v (MainPID was %d)", u2, err, u.MainPID)
	}

	if _, err := c.Unit(ctx, "no-such-thing.service"); !errors.Is(err, systemd.ErrUnitNotFound) {
		t.Fatalf("unknown unit: %v", err)
	}
	if _, err := c.State(ctx, "no-such-thing.service"); !errors.Is(err, systemd.ErrUnitNotFound) {
		t.Fatalf("State of an unknown unit: %v", err)
	}
}
