package reload

import (
	"bytes"
	"context"
	"fmt"
	"os"
)

// plan is what the check stage tells the rest of the transaction.
type plan struct {
	before     baseline
	newBytes   []byte
	diskBytes  []byte
	runningSHA string // "" when haguard does not know what runs
	unchanged  bool
}

// candidateFiles is the -f list with the candidate in the target's place.
func (t *txn) candidateFiles() []string {
	files := append([]string(nil), t.settings.Files...)
	if t.opt.Candidate == "" {
		return files
	}
	for i, f := range files {
		if f == t.settings.Target {
			files[i] = t.opt.Candidate
			return files
		}
	}
	return append(files, t.opt.Candidate)
}

// check lints the candidate and runs `haproxy -c` on it while the
// baseline (master CLI, systemd) is read, and decides whether the
// candidate is what already runs.
func (t *txn) check(ctx context.Context) (plan, error) {
	var p plan
	err := t.stage(ctx, StageCheck, func() (string, error) {
		baseline := t.readBaselineAsync(ctx)
		src := t.settings.Target
		if t.opt.Candidate != "" {
			src = t.opt.Candidate
		}
		var err error
		if p.newBytes, err = os.ReadFile(src); err != nil {
			baseline.stop()
			return "", fmt.Errorf("read candidate: %w", err)
		}
		if p.diskBytes, err = os.ReadFile(t.settings.Target); err != nil && !isNotExist(err) {
			baseline.stop()
			return "", fmt.Errorf("read target: %w", err)
		}
		rep, err := t.deps.Checker.Check(ctx, t.candidateFiles())
		var berr error
		if p.before, berr = baseline.wait(); berr != nil {
			return "", fmt.Errorf("master CLI: %w (without it the new generation cannot be verified)", berr)
		}
		if err != nil {
			return "", fmt.Errorf("run check: %w", err)
		}
		// The check read the files by path; the install writes the bytes
		// read above. They must be the same bytes, or what is installed
		// was never checked (and an edit of the target made meanwhile
		// would be overwritten without a snapshot).
		if err := sameBytes(src, p.newBytes); err != nil {
			return "", err
		}
		if src != t.settings.Target {
			if err := sameBytes(t.settings.Target, p.diskBytes); err != nil {
				return "", err
			}
		}
		t.res.Findings = append(t.res.Findings, rep.Findings...)
		t.res.CheckOutput = rep.Output
		t.checked = rep.Config
		nerr := countErrors(rep.Findings)
		if !rep.Valid {
			return fmt.Sprintf("haproxy -c: invalid; %d findings (%d errors)", len(rep.Findings), nerr),
				fmt.Errorf("haproxy -c refused the config: %s", firstLines(rep.Output, 3))
		}
		detail := fmt.Sprintf("haproxy -c: valid; %d findings (%d errors)", len(rep.Findings), nerr)
		if nerr > 0 {
			return detail, fmt.Errorf("%d error findings", nerr)
		}
		if run, err := t.store.running(); err == nil && run.MasterPID == p.before.gen.MasterPID && run.Reloads == p.before.gen.Reloads && run.Target == t.settings.Target {
			p.runningSHA = run.SHA256
		}
		p.unchanged = p.runningSHA != "" && p.runningSHA == sha(p.newBytes) && bytes.Equal(p.newBytes, p.diskBytes) && !t.opt.Force
		return detail, nil
	})
	return p, err
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
	if p.unchanged {
		t.res.Unchanged = true
		t.res.Plan = []string{"config unchanged: no install, no reload", "sweep", "probe"}
		return ErrUnchanged
	}
	t.res.Plan = []string{
		fmt.Sprintf("snapshot %s (sha256 %s) into %s", t.settings.Target, short(sha(p.diskBytes)), t.store.historyDir()),
		fmt.Sprintf("install sha256 %s at %s", short(sha(p.newBytes)), t.settings.Target),
		fmt.Sprintf("reload %s (master now at %d reloads, %d failed)", t.settings.Unit, p.before.gen.Reloads, p.before.gen.Failed),
		"settle: wait for a new generation, reloads+1, failed unchanged",
		"sweep for ghost and divergent processes",
		"probe every listener",
	}
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

func firstLines(s string, n int) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(s)), []byte("\n"))
	if len(lines) > n {
		lines = lines[:n]
	}
	return string(bytes.Join(lines, []byte("; ")))
}
