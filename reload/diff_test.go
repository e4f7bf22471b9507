package reload

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/haguard/haguard/validate"
)

// setDiffer reports, for each config file, its content before and after.
type setDiffer struct{}

func (setDiffer) Diff(_ context.Context, before, after ConfigSet) ([]validate.Change, error) {
	var out []validate.Change
	for _, f := range after.Files {
		a, _ := after.Read(f)
		b, _ := before.Read(f)
		if string(a) != string(b) {
			out = append(out, validate.Change{Kind: "directive", Op: validate.OpChanged, Name: f,
				Before: strings.TrimSpace(string(b)), After: strings.TrimSpace(string(a)), Runtime: strings.Contains(string(a), "weight")})
		}
	}
	return out, nil
}

// A dry run and Reloader.Diff compare with what runs: the set haguard
// installed (from the history) while the master is at that generation,
// even when the disk was edited since; else the disk.
func TestDiffAgainstWhatRuns(t *testing.T) {
	f := newFixture(t)
	d := f.w.deps()
	d.Differ = setDiffer{}
	r, _ := New(f.s, d)
	ctx := context.Background()

	// Unknown: compared with the disk.
	res, err := r.Run(ctx, Options{Candidate: f.candidate(t, "good v2 weight\n"), DryRun: true})
	if err != nil || res.Diff == nil || !strings.HasPrefix(res.Diff.Against, "the config set on disk") ||
		len(res.Diff.Changes) != 1 || res.Diff.Changes[0].Before != "good v1" || res.Diff.Runtime != 1 || res.Diff.Reload != 0 {
		t.Fatalf("dry run: %v %+v", err, res.Diff)
	}
	if len(res.Plan) == 0 || !res.DryRun {
		t.Fatalf("plan %v", res.Plan)
	}

	if _, err := r.Run(ctx, Options{Candidate: f.candidate(t, "good v2\n")}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.target, []byte("good v3 edited\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	// In place: the disk's edit against what runs.
	got, err := r.Diff(ctx, Options{})
	if err != nil || !strings.HasPrefix(got.Against, "the running config set") || len(got.Changes) != 1 ||
		got.Changes[0].Before != "good v2" || got.Changes[0].After != "good v3 edited" || got.Reload != 1 {
		t.Fatalf("diff in place: %v %+v", err, got)
	}
	// Someone reloaded outside haguard: what runs is unknown again.
	f.w.master.Reloads++
	got, err = r.Diff(ctx, Options{Candidate: f.candidate(t, "good v4\n")})
	if err != nil || !strings.HasPrefix(got.Against, "the config set on disk") || got.Changes[0].Before != "good v3 edited" {
		t.Fatalf("diff after an outside reload: %v %+v", err, got)
	}
}

// A server without a health check is "no check" in show stat: haproxy
// sends it traffic, so it is not "not UP".
func TestNotUpLeavesUncheckedServers(t *testing.T) {
	rep := ProbeReport{Servers: []ServerHealth{{Backend: "be", Server: "a", Status: "no check"}, {Backend: "be", Server: "b", Status: "DOWN", Check: "L4CON"},
		{Backend: "be", Server: "c", Status: "UP 1/3"}}}
	if got := rep.NotUp(); len(got) != 1 || got[0] != "be/b DOWN L4CON" {
		t.Fatalf("NotUp %q", got)
	}
}
