package reload

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestConflictFailsTheSweepAndIsNeverKilled: another unit's haproxy on
// the unit's address fails the sweep stage, with or without
// --kill-ghosts, and is never offered to the kill; other-unit and
// foreign processes leave the sweep passing.
func TestConflictFailsTheSweepAndIsNeverKilled(t *testing.T) {
	f := newFixture(t)
	f.w.procs = []Process{
		{PID: 7, Class: ClassCurrent},
		{PID: 20, Class: ClassOtherUnit, Reason: "belongs to haproxy@b.service"},
		{PID: 30, Class: ClassForeign, Reason: "in another network namespace"},
	}
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")})
	if err != nil || !res.OK {
		t.Fatalf("other-unit and foreign failed the reload: %v", err)
	}
	if res.Sweep == nil || res.Sweep.Counts[ClassOtherUnit] != 1 || res.Sweep.Counts[ClassForeign] != 1 {
		t.Fatalf("sweep %+v", res.Sweep)
	}
	if d := stageDetail(res, StageSweep); !strings.Contains(d, "other-unit: 1, foreign: 1") {
		t.Fatalf("sweep detail %q", d)
	}

	f.w.procs = append(f.w.procs, Process{PID: 40, Class: ClassConflict, Reason: "stop haproxy@c.service"})
	for _, kill := range []bool{false, true} {
		res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v3\n"), KillGhosts: kill})
		if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "pid 40 conflict (stop haproxy@c.service)") ||
			!strings.Contains(err.Error(), "stop the unit each names") {
			t.Fatalf("kill %v: err %v", kill, err)
		}
		if res.Sweep == nil || len(res.Sweep.Bad) != 1 || res.Sweep.Bad[0].PID != 40 {
			t.Fatalf("kill %v: bad %+v", kill, res.Sweep)
		}
	}
	if len(f.w.killed) != 0 {
		t.Fatalf("killed %v", f.w.killed)
	}

	// With a ghost beside it, --kill-ghosts kills the ghost only.
	f.w.procs = append(f.w.procs, Process{PID: 50, Class: ClassGhost})
	if _, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v4\n"), KillGhosts: true}); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("err %v", err)
	}
	if !slices.Equal(f.w.killed, []int{50}) {
		t.Fatalf("killed %v, want the ghost only", f.w.killed)
	}
}

func stageDetail(res Result, name string) string {
	for _, s := range res.Stages {
		if s.Name == name {
			return s.Detail
		}
	}
	return ""
}
