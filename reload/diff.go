package reload

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/haguard/haguard/validate"
)

// ConfigSet is a config set as content, for a differ: its config files
// in load order, and what any member holds (a config file, or a file the
// config loads: maps, ACL files, ...); false for an absent one.
type ConfigSet struct {
	Files []string
	Read  func(path string) ([]byte, bool)
}

// differ compares two config sets by meaning (haguard diff). Optional:
// without one a dry run has no diff.
type differ interface {
	Diff(ctx context.Context, before, after ConfigSet) ([]validate.Change, error)
}

// Diff is what a candidate changes against what runs.
type Diff struct {
	// Against says what the candidate was compared with: the running
	// set haguard installed, or the files on disk when haguard does not
	// know what runs.
	Against string            `json:"against"`
	Changes []validate.Change `json:"changes"`
	// Runtime and Reload count the changes the master CLI can apply to
	// the running processes, and those that need a reload.
	Runtime int `json:"runtime"`
	Reload  int `json:"reload"`
}

// Diff compares the candidate of opt (the files on disk when it has
// none) with what runs, without the lock and without a check: what
// `haguard diff` prints. What runs is the set haguard last installed
// when the master is still at that generation, else the files on disk.
func (r *Reloader) Diff(ctx context.Context, opt Options) (Diff, error) {
	if r.deps.Differ == nil {
		return Diff{}, fmt.Errorf("diff: no differ")
	}
	t := newTxn(r, opt, r.now())
	p, err := t.readPlan()
	if err != nil {
		return Diff{}, err
	}
	if g, err := t.deps.Master.ShowProc(ctx); err == nil {
		if run, err := t.store.running(); err == nil && run.sameGeneration(g) && run.Target == t.settings.Target {
			p.running = &run
		}
	}
	d, err := t.diff(ctx, p)
	if err != nil {
		return Diff{}, err
	}
	return *d, nil
}

// diff compares the plan's new set with what runs (p.running's blobs),
// else with the disk as it is before the install.
func (t *txn) diff(ctx context.Context, p plan) (*Diff, error) {
	disk := func(path string) ([]byte, bool) {
		if b, ok := p.disk[path]; ok {
			return b, b != nil
		}
		b, err := os.ReadFile(path)
		return b, err == nil
	}
	after := ConfigSet{Files: p.configs, Read: func(path string) ([]byte, bool) {
		if b, ok := p.cand[path]; ok {
			return b, b != nil
		}
		return disk(path)
	}}
	before := ConfigSet{Files: expandFiles(t.settings.Files, nil), Read: disk}
	against := "the config set on disk: haguard does not know what runs (never reloaded by haguard, or reloaded or restarted outside it)"
	if p.running != nil {
		if set, ok := t.runningSet(*p.running, before.Files); ok {
			before = set
			against = fmt.Sprintf("the running config set %s (installed by %s)", short(p.running.identity()), p.running.ID)
		}
	}
	changes, err := t.deps.Differ.Diff(ctx, before, after)
	if err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	d := &Diff{Against: against, Changes: changes}
	if d.Changes == nil {
		d.Changes = []validate.Change{}
	}
	for _, c := range d.Changes {
		if c.Runtime {
			d.Runtime++
		} else {
			d.Reload++
		}
	}
	return d, nil
}

// runningSet is the set run records, from the history's blobs: its config
// files in the order the disk's -f arguments load them. false when a
// blob is missing (pruned) or the record names no files.
func (t *txn) runningSet(run Running, order []string) (ConfigSet, bool) {
	m := run.manifest()
	if len(m) == 0 {
		return ConfigSet{}, false
	}
	content := map[string][]byte{}
	var files []string
	for _, e := range m {
		if e.SHA256 == "" {
			continue
		}
		b, err := t.store.blob(e.SHA256)
		if err != nil {
			return ConfigSet{}, false
		}
		content[e.Path] = b
		if !e.Ref {
			files = append(files, e.Path)
		}
	}
	slices.SortStableFunc(files, func(a, b string) int {
		ia, ib := slices.Index(order, a), slices.Index(order, b)
		if ia < 0 {
			ia = len(order)
		}
		if ib < 0 {
			ib = len(order)
		}
		return ia - ib
	})
	return ConfigSet{Files: files, Read: func(path string) ([]byte, bool) {
		b, ok := content[path]
		return b, ok
	}}, true
}
