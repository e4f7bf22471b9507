package reload

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A master that never takes the reload (haproxy #3229) is named as such,
// with the remedy; the files are put back and no second reload is tried
// (it would hang the same way). The host needs a human: ErrBroken.
func TestStuckMasterIsNamed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pending bool
		want    string
	}{
		{"SIGUSR2 pending", true, "master pid 100 has SIGUSR2 (reload) pending"},
		{"counter never moves", false, "its reload counter is still 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.w.stuck, f.w.sigPending = true, tc.pending
			res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")})
			if !errors.Is(err, ErrStuckMaster) || !errors.Is(err, ErrBroken) || !res.Broken {
				t.Fatalf("err %v broken %v, want ErrStuckMaster", err, res.Broken)
			}
			msg := stageError(res, StageSettle)
			for _, w := range []string{tc.want, "#3229", "systemctl restart haproxy.service"} {
				if !strings.Contains(msg, w) {
					t.Errorf("settle error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "no new generation within") {
				t.Errorf("a generic settle timeout: %q", msg)
			}
			if f.disk(t) != "good v1\n" || f.w.reloads != 1 {
				t.Fatalf("disk %q after %d reload jobs, want v1 back and no second reload", f.disk(t), f.w.reloads)
			}
			if last := res.Stages[len(res.Stages)-1]; last.Name != StageRollback || !last.OK || !strings.Contains(last.Detail, "not reloaded") {
				t.Fatalf("rollback stage %+v", last)
			}
		})
	}
}
