package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/reload"
)

func TestOutcomeMapping(t *testing.T) {
	ok := reload.Result{ID: "t1", OK: true, DurationMS: 1500,
		Findings: []reload.Finding{{Severity: "warning"}, {Severity: "warning"}, {Severity: "info"}},
		Probes:   reload.ProbeReport{OK: 9, Failed: 1}}
	bad := ok
	bad.OK = false
	for _, c := range []struct {
		res     reload.Result
		err     error
		want    string
		wantErr bool
	}{
		{ok, nil, api.ResultOK, false},
		{ok, fmt.Errorf("x: %w", reload.ErrUnchanged), api.ResultUnchanged, false},
		{bad, fmt.Errorf("x: %w", reload.ErrUnchanged), api.ResultFailed, true},
		{bad, fmt.Errorf("x: %w", reload.ErrRefused), api.ResultRefused, true},
		{bad, &reload.LockedError{Holder: "cli"}, api.ResultRefused, true},
		{bad, fmt.Errorf("x: %w", reload.ErrRolledBack), api.ResultRolledBack, true},
		{bad, fmt.Errorf("x: %w", reload.ErrBroken), api.ResultFailed, true},
		{bad, fmt.Errorf("x: %w", reload.ErrVerify), api.ResultFailed, true},
		{bad, errors.New("other"), api.ResultFailed, true},
	} {
		o, err := outcome(c.res, c.err)
		if o.Result != c.want || (err != nil) != c.wantErr {
			t.Errorf("outcome(%v) = %s, %v; want %s (error %v)", c.err, o.Result, err, c.want, c.wantErr)
		}
		if o.ID != "t1" || o.Duration.Seconds() != 1.5 || o.Counts["warning"] != 2 || o.Probes.Failed != 1 {
			t.Errorf("outcome fields: %+v", o)
		}
		if _, isResult := o.Body.(reload.Result); !isResult {
			t.Errorf("body is %T, want reload.Result", o.Body)
		}
	}
}

// TestBuildPiecesRebuilds proves the daemon's pieces come from the same
// host.Host construction `haguard reload` uses (one construction, no
// copy): the host carries the haguard.yaml given, building does not touch
// the bus, and a SIGHUP rebuild makes a fresh set.
func TestBuildPiecesRebuilds(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Systemd.Unit = "pieces-test.service"
	log := slog.New(slog.DiscardHandler)
	sw := newSweeps(nil, log, nil) // metrics are only touched when a sweep runs
	open := func() *host.Host {
		h, err := host.OpenWithoutSystemd(cfg, errors.New("no bus in this test"), log)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if _, err := buildPieces(open(), sw); err == nil {
		t.Fatal("pieces built without systemd: the reloader must need it")
	}
	h := open()
	if h.Config().StateDir != cfg.StateDir || h.Config().Systemd.Unit != cfg.Systemd.Unit {
		t.Fatalf("host config %+v", h.Config())
	}
}
