package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
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
// the bus, and a SIGHUP rebuild over the same connection makes a fresh set.
func TestBuildPiecesRebuilds(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Systemd.Unit = "pieces-test.service"
	log := slog.New(slog.DiscardHandler)
	sd := &systemd.Client{}        // not dialled: building must not touch the bus
	sw := newSweeps(nil, log, nil) // metrics are only touched when a sweep runs
	p1, err := buildPieces(cfg, sd, sw, log)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := buildPieces(cfg, sd, sw, log)
	if err != nil {
		t.Fatal(err)
	}
	if p1.rel == nil || p1.sweeper == nil || p1.cfg().StateDir != cfg.StateDir || p1.cfg().Systemd.Unit != cfg.Systemd.Unit {
		t.Fatalf("pieces: %+v", p1)
	}
	if p1.rel == p2.rel || p1.host == p2.host {
		t.Fatal("a rebuild (SIGHUP) must make new pieces")
	}
}
