package reload

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// edit replaces old with new in the first config file.
func edit(old, new string) func([]string, func(string) ([]byte, bool)) (map[string][]byte, error) {
	return func(configs []string, read func(string) ([]byte, bool)) (map[string][]byte, error) {
		b, _ := read(configs[0])
		return map[string][]byte{configs[0]: []byte(strings.Replace(string(b), old, new, 1))}, nil
	}
}

func TestApplyRuntimePersistsWithoutAReload(t *testing.T) {
	f := newFixture(t)
	if _, err := f.r.Run(context.Background(), Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	applied := 0
	ch := RuntimeChange{What: "server be/s1: weight 5", Edit: edit("v1", "v1 weight 5"),
		Apply: func(context.Context) error { applied++; return nil }, Revert: func(context.Context) error { applied--; return nil }}
	id, _ := f.r.Identity()
	res, err := f.r.ApplyRuntime(context.Background(), Options{Who: "alice"}, id, ch)
	if err != nil || !res.OK || applied != 1 {
		t.Fatalf("%v %+v", err, res.Stages)
	}
	if want := []string{StageCheck, StageApply, StageSnapshot, StageInstall}; !slices.Equal(stageNames(res), want) {
		t.Fatalf("stages %v", stageNames(res))
	}
	if f.disk(t) != "good v1 weight 5\n" || f.w.master.Reloads != 1 {
		t.Fatalf("disk %q, reloads %d", f.disk(t), f.w.master.Reloads)
	}
	es, _ := f.r.History()
	if len(es) != 2 || es[1].Runtime != ch.What || es[1].Outcome != OutcomeCommitted {
		t.Fatalf("history %+v", es)
	}
	// What runs is the edited set: no drift.
	run, err := f.r.store.running()
	if nid, _ := f.r.Identity(); err != nil || run.SHA256 != nid {
		t.Fatalf("running %s, disk %s: %v", run.SHA256, nid, err)
	}
	audit, _ := os.ReadFile(f.s.StateDir + "/" + auditFile)
	if !strings.Contains(string(audit), `"runtime":"server be/s1: weight 5"`) {
		t.Fatalf("audit: %s", audit)
	}

	// A stale If-Match: nothing applied, nothing written.
	_, err = f.r.ApplyRuntime(context.Background(), Options{}, id, ch)
	if !errors.Is(err, ErrStale) || applied != 1 {
		t.Fatalf("stale: %v, applied %d", err, applied)
	}
	// A process that fails: nothing written.
	ch.Apply = func(context.Context) error { return errors.New("old worker 7: Proxy is gone") }
	ch.Edit = edit("weight 5", "weight 6")
	if _, err := f.r.ApplyRuntime(context.Background(), Options{}, "", ch); !errors.Is(err, ErrRefused) || f.disk(t) != "good v1 weight 5\n" {
		t.Fatalf("failed apply: %v, disk %q", err, f.disk(t))
	}
	// An edit haproxy -c refuses: nothing applied.
	ch.Apply = func(context.Context) error { applied++; return nil }
	ch.Edit = edit("weight 5", "syntax error")
	if _, err := f.r.ApplyRuntime(context.Background(), Options{}, "", ch); !errors.Is(err, ErrRefused) || applied != 1 {
		t.Fatalf("invalid edit: %v, applied %d", err, applied)
	}
}

type fakeKeeper struct {
	detail       string
	before, cand string
}

func (k *fakeKeeper) Keep(context.Context) (func(context.Context, ConfigSet, ConfigSet) (string, error), error) {
	return func(_ context.Context, before, after ConfigSet) (string, error) {
		b, _ := before.Read(before.Files[0])
		a, _ := after.Read(after.Files[0])
		k.before, k.cand = string(b), string(a)
		return k.detail, nil
	}, nil
}

// The restore stage runs after settle with the set before and after the
// install, and is recorded only when it carried or dropped something.
func TestRestoreStage(t *testing.T) {
	for _, detail := range []string{"carried: be/s1 state drain", ""} {
		f := newFixture(t)
		k := &fakeKeeper{detail: detail}
		d := f.w.deps()
		d.State = k
		r, err := New(f.s, d)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2\n")})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{StageCheck, StageSnapshot, StageInstall, StageReload, StageSettle, StageRestore, StageSweep, StageProbe}
		if detail == "" {
			want = slices.Delete(want, 5, 6)
		}
		if got := stageNames(res); !slices.Equal(got, want) {
			t.Fatalf("stages %v, want %v", got, want)
		}
		if k.before != "good v1\n" || k.cand != "good v2\n" {
			t.Fatalf("restore saw %q -> %q", k.before, k.cand)
		}
	}
}
