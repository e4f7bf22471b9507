package reload

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/haguard/haguard/validate"
)

// plan is what the check stage tells the rest of the transaction.
type plan struct {
	before baseline
	// cand is what the run installs (empty for an in-place reload).
	cand candidate
	// disk is what the paths of the set (old and new) and of the
	// candidate hold now; nil for an absent file.
	disk map[string][]byte
	// configs are the new set's config files in load order; refs the
	// files the new config loads (from the check).
	configs, refs []string
	// running is what runs, when haguard knows it (the same master at
	// the same reload count as at its last commit).
	running *Running
	// unchanged: the candidate is what already runs.
	unchanged bool
}

// content is path's content after the install.
func (p plan) content(path string) []byte {
	if b, ok := p.cand[path]; ok {
		return b
	}
	return p.disk[path]
}

// manifest is the new set as it will be installed.
func (p plan) manifest() Manifest {
	return manifestOf(p.configs, p.refs, func(path string) ([]byte, error) {
		if b := p.content(path); b != nil {
			return b, nil
		}
		return nil, os.ErrNotExist
	})
}

// changes are the files the install writes or deletes: the candidate's
// paths whose content differs from the disk's.
func (p plan) changes() []string {
	var out []string
	for _, path := range p.cand.paths() {
		if !bytes.Equal(p.cand[path], p.disk[path]) || (p.cand[path] == nil) != (p.disk[path] == nil) {
			out = append(out, path)
		}
	}
	return out
}

// readDisk reads paths into m (nil for an absent file).
func readDisk(m map[string][]byte, paths []string) error {
	for _, path := range paths {
		if _, done := m[path]; done {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil && !isNotExist(err) {
			return fmt.Errorf("read %s: %w", path, err)
		}
		m[path] = b
	}
	return nil
}

// check lints the candidate and runs `haproxy -c` on it while the
// baseline (master CLI, systemd) is read, and decides whether the
// candidate is what already runs.
func (t *txn) check(ctx context.Context) (plan, error) {
	var p plan
	err := t.stage(ctx, StageCheck, func() (string, error) {
		baseline := t.readBaselineAsync(ctx)
		var err error
		if p, err = t.readPlan(); err != nil {
			baseline.stop()
			return "", err
		}
		req, cleanup, err := t.stageCheck(p)
		if err != nil {
			baseline.stop()
			return "", err
		}
		rep, err := t.deps.Checker.Check(ctx, req)
		cleanup()
		var berr error
		if p.before, berr = baseline.wait(); berr != nil {
			if u, err := t.deps.Unit.UnitState(ctx, t.settings.Unit); err == nil {
				if why := t.stuckMaster(ctx, u.MainPID); why != "" {
					return "", fmt.Errorf("%w: %s", ErrStuckMaster, why)
				}
			}
			return "", fmt.Errorf("master CLI: %w (without it the new generation cannot be verified)", berr)
		}
		t.before, t.learned = p.before.servers, p.before.learned
		if err != nil {
			return "", fmt.Errorf("run check: %w", err)
		}
		if err := t.adoptCheck(&p, rep); err != nil {
			return "", err
		}
		nerr := countErrors(rep.Findings)
		if !rep.Valid {
			return fmt.Sprintf("haproxy -c: invalid; %d findings (%d errors)", len(rep.Findings), nerr),
				fmt.Errorf("haproxy -c: %s", refusal(rep.Output))
		}
		detail := fmt.Sprintf("haproxy -c: valid; %d findings (%d errors)", len(rep.Findings), nerr)
		blocking := nerr
		if rep.Blocking != nil {
			blocking = countErrors(rep.Blocking)
			if known := nerr - blocking; known > 0 {
				detail += fmt.Sprintf(", %d of them already in the running config (--strict refuses those too)", known)
			}
		}
		if blocking > 0 {
			return detail, fmt.Errorf("%d error findings", blocking)
		}
		if run, err := t.store.running(); err == nil && run.sameGeneration(p.before.gen) && run.Target == t.settings.Target {
			p.running = &run
		}
		// The refs are known now: read the ones the disk has not been read for.
		if err := readDisk(p.disk, p.refs); err != nil {
			return "", err
		}
		if p.running == nil {
			detail += t.adoptDisk(&p)
		}
		p.unchanged = p.running != nil && len(p.changes()) == 0 && p.running.identity() == p.manifest().Identity() && !t.opt.Force
		return detail, nil
	})
	return p, err
}

// readPlan reads the candidate and what the disk holds for it and for the
// set's config files.
func (t *txn) readPlan() (plan, error) {
	p := plan{cand: candidate{}, disk: map[string][]byte{}}
	switch {
	case t.opt.candidateSet != nil:
		p.cand = t.opt.candidateSet
	case t.opt.Candidate != "":
		c, err := t.loadCandidate()
		if err != nil {
			return p, err
		}
		p.cand = c
	}
	p.configs = expandFiles(t.settings.Files, p.cand)
	old := expandFiles(t.settings.Files, nil)
	if err := readDisk(p.disk, slices.Concat(p.cand.paths(), p.configs, old)); err != nil {
		return p, err
	}
	return p, nil
}

// stageCheck writes the candidate's files into a scratch directory, for
// the checker to read in place of the real paths.
func (t *txn) stageCheck(p plan) (CheckRequest, func(), error) {
	req := CheckRequest{Files: p.configs, Strict: t.opt.Strict, SkipLint: t.opt.SkipLint, Untrusted: t.opt.Untrusted}
	if run, err := t.store.running(); err == nil {
		if set, ok := t.runningSet(run, expandFiles(t.settings.Files, nil)); ok {
			req.Running = &set
		}
	}
	if len(p.cand) == 0 {
		return req, func() {}, nil
	}
	dir := filepath.Join(t.store.dir, "tmp", "check-"+t.res.ID)
	cleanup := func() { _ = os.RemoveAll(dir) }
	req.Staged = map[string]string{}
	for _, path := range p.cand.paths() {
		b := p.cand[path]
		if b == nil {
			continue // deleted: not in Files any more
		}
		staged := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(staged), 0o700); err != nil {
			cleanup()
			return req, nil, fmt.Errorf("stage the candidate: %w", err)
		}
		if err := os.WriteFile(staged, b, 0o600); err != nil {
			cleanup()
			return req, nil, fmt.Errorf("stage the candidate: %w", err)
		}
		req.Staged[path] = staged
	}
	return req, cleanup, nil
}

// sameAsPlanned says whether the candidate and the disk still hold what
// readPlan read.
// adoptCheck takes the check's report into the run. The check read the
// files by path; the install writes the bytes planned before it. They
// must be the same bytes, or what is installed was never checked (and an
// edit made meanwhile would be overwritten without a snapshot).
func (t *txn) adoptCheck(p *plan, rep CheckReport) error {
	if err := t.sameAsPlanned(*p); err != nil {
		return err
	}
	t.res.Findings = append(t.res.Findings, rep.Findings...)
	t.res.CheckOutput = rep.Output
	t.checked = rep.Config
	p.refs = rep.Refs
	return nil
}

func (t *txn) sameAsPlanned(p plan) error {
	if t.opt.Candidate != "" && t.opt.candidateSet == nil {
		now, err := t.loadCandidate()
		if err != nil {
			return err
		}
		if len(now) != len(p.cand) {
			return fmt.Errorf("%s changed while it was checked; run again once it is saved", t.opt.Candidate)
		}
		for path, b := range p.cand {
			if nb, ok := now[path]; !ok || !bytes.Equal(nb, b) || (nb == nil) != (b == nil) {
				return fmt.Errorf("%s changed while it was checked; run again once it is saved", t.opt.Candidate)
			}
		}
	}
	for path, b := range p.disk {
		if err := sameBytes(path, b); err != nil {
			return err
		}
	}
	return nil
}

func countErrors(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Severity == "error" {
			n++
		}
	}
	return n
}

func (t *txn) dryRun(ctx context.Context) error {
	t.res.DryRun = true
	p, err := t.check(ctx)
	if err != nil {
		t.res.Outcome = OutcomeRefused
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	t.res.OK = true
	if t.deps.Differ != nil {
		d, err := t.diff(ctx, p)
		if err != nil {
			t.log.Warn("dry run: no diff", "err", err)
			t.res.Plan = append(t.res.Plan, fmt.Sprintf("(no diff: %v)", err))
		}
		t.res.Diff = d
	}
	if p.unchanged {
		t.res.Unchanged = true
		t.res.Plan = append(t.res.Plan, "config unchanged: no install, no reload", "sweep", "probe")
		return ErrUnchanged
	}
	t.res.Plan = append(t.res.Plan, fmt.Sprintf("snapshot the config set (%d files) into %s", len(p.configs)+len(p.refs), t.store.historyDir()))
	for _, path := range p.changes() {
		what := fmt.Sprintf("install sha256 %s at %s", short(sha(p.cand[path])), path)
		if p.cand[path] == nil {
			what = "delete " + path
		}
		t.res.Plan = append(t.res.Plan, what)
	}
	t.res.Plan = append(t.res.Plan,
		fmt.Sprintf("reload %s (master now at %d reloads, %d failed)", t.settings.Unit, p.before.gen.Reloads, p.before.gen.Failed),
		"settle: wait for a new generation, reloads+1, failed unchanged",
		"sweep for ghost and divergent processes",
		"probe every listener",
	)
	return nil
}

// sameBytes says whether path still holds want (nil: absent).
func sameBytes(path string, want []byte) error {
	b, err := os.ReadFile(path)
	if err != nil && !isNotExist(err) {
		return fmt.Errorf("read %s again: %w", path, err)
	}
	if (err == nil) != (want != nil) || !bytes.Equal(b, want) {
		return fmt.Errorf("%s changed while it was checked; run again once it is saved", path)
	}
	return nil
}

// refusal is why haproxy -c refused a config: its first ALERT as
// "file:line: error: message" and how many more there are, else the
// first lines of its output.
func refusal(out string) string {
	ds := validate.ParseDiagnostics(out)
	d, ok := validate.FirstError(ds)
	if !ok {
		return "refused the config: " + firstLines(out, 3)
	}
	if n, _ := validate.CountDiagnostics(ds); n > 1 {
		return fmt.Sprintf("%s (+%d more)", d, n-1)
	}
	return d.String()
}

func firstLines(s string, n int) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(s)), []byte("\n"))
	if len(lines) > n {
		lines = lines[:n]
	}
	return string(bytes.Join(lines, []byte("; ")))
}
