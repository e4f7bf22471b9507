package reload

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/haguard/haguard/internal/async"
)

// verify runs the sweep and the probe stages, both even if the sweep
// fails. Neither needs the other, so the probe starts with the sweep and
// its stage takes the answer once the sweep's has ended: the stages stay
// in order in the report and the journal, and the run is shorter by the
// faster of the two (docs/benchmarks.md, reload). A sweep that killed
// ghosts probes again: some of the first probes may have reached them.
func (t *txn) verify(ctx context.Context) error {
	early := t.startProbe(ctx)
	serr := t.stage(ctx, StageSweep, func() (string, error) { return t.sweep(ctx) })
	perr := t.stage(ctx, StageProbe, func() (string, error) {
		p := early.Wait()
		rep, err := p.rep, p.err
		if t.res.Sweep != nil && t.res.Sweep.Killed > 0 && t.settings.Probe {
			rep, err = t.Reloader.deps.Prober.Probe(ctx, t.checked, t.learned)
		}
		return t.judgeProbe(rep, err)
	})
	return errors.Join(serr, perr)
}

// probed is what the probes beside the sweep found.
type probed struct {
	rep ProbeReport
	err error
}

// startProbe starts the probe stage's probes through the bare prober:
// its steps would show under the sweep's stage; the probe stage's end
// says their outcome.
func (t *txn) startProbe(ctx context.Context) *async.Task[probed] {
	return async.Go(func() probed {
		if !t.settings.Probe {
			return probed{}
		}
		rep, err := t.Reloader.deps.Prober.Probe(ctx, t.checked, t.learned)
		return probed{rep, err}
	})
}

// sweep classifies every haproxy process; ghost, divergent and conflict
// ones fail the stage, unless --kill-ghosts removes them (it never kills
// a conflict: that is another unit's, to stop).
func (t *txn) sweep(ctx context.Context) (string, error) {
	rep, err := t.deps.Sweeper.Sweep(ctx)
	if err != nil {
		return "", fmt.Errorf("sweep: %w", err)
	}
	killed := 0
	// A conflict is another unit's haproxy: never offered to the kill.
	bad := slices.DeleteFunc(badProcs(rep.Processes), func(p Process) bool { return p.Class == ClassConflict })
	if len(bad) > 0 && t.opt.KillGhosts {
		if err := t.deps.Sweeper.Kill(ctx, bad); err != nil {
			return "", fmt.Errorf("kill ghosts: %w", err)
		}
		killed = len(bad)
		if rep, err = t.deps.Sweeper.Sweep(ctx); err != nil {
			return "", fmt.Errorf("sweep after kill: %w", err)
		}
	}
	t.res.Processes = append(t.res.Processes[:0], rep.Processes...)
	s := &SweepResult{Counts: map[string]int{}, Killed: killed, Bad: badProcs(rep.Processes)}
	for _, p := range rep.Processes {
		s.Counts[p.Class]++
	}
	t.res.Sweep = s
	if len(s.Bad) == 0 {
		return s.detail(), nil
	}
	hint := " (--kill-ghosts kills them)"
	switch {
	case !slices.ContainsFunc(s.Bad, func(p Process) bool { return p.Class != ClassConflict }):
		hint = " (stop the unit each names; no kill ever touches another unit's haproxy)"
	case t.opt.KillGhosts:
		hint = " (still there after kill)"
	}
	return s.detail(), fmt.Errorf("%d ghost, divergent or conflicting processes: %s%s", len(s.Bad), listProcs(s.Bad), hint)
}

func (s *SweepResult) detail() string {
	d := fmt.Sprintf("ghosts: %d, divergent: %d, current: %d, draining: %d",
		s.Counts[ClassGhost], s.Counts[ClassDivergent], s.Counts[ClassCurrent], s.Counts[ClassDraining])
	for _, c := range []string{ClassConflict, ClassOtherUnit, ClassForeign} {
		if n := s.Counts[c]; n > 0 {
			d += fmt.Sprintf(", %s: %d", c, n)
		}
	}
	if s.Killed > 0 {
		d += fmt.Sprintf("; killed %d", s.Killed)
	}
	return d
}

func listProcs(ps []Process) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("pid %d %s (%s)", p.PID, p.Class, p.Reason)
	}
	return strings.Join(parts, ", ")
}

func badProcs(ps []Process) []Process {
	var bad []Process
	for _, p := range ps {
		if p.Class == ClassGhost || p.Class == ClassDivergent || p.Class == ClassConflict {
			bad = append(bad, p)
		}
	}
	return bad
}

// judgeProbe is the probe stage's verdict on the probes through every
// listener of the checked config: every probe must pass, and the servers
// must meet reload.backends.
func (t *txn) judgeProbe(rep ProbeReport, err error) (string, error) {
	if !t.settings.Probe {
		return "probing disabled (reload.probe: false)", nil
	}
	if rep.Attempts == nil {
		rep.Attempts = []ProbeAttempt{}
	}
	t.res.Probes = rep
	if err != nil {
		return "", fmt.Errorf("probe: %w", err)
	}
	detail := rep.detail()
	var errs []error
	if rep.Failed > 0 {
		errs = append(errs, fmt.Errorf("%d of %d probes failed%s", rep.Failed, rep.Total, rep.firstError()))
	}
	if v := backendVerdict(t.settings.Backends, t.before, rep.Servers, t.checked); len(v) > 0 {
		errs = append(errs, fmt.Errorf("backends (reload.backends: %s): %s", t.settings.Backends, strings.Join(v, "; ")))
	}
	return detail, errors.Join(errs...)
}

// NotUp lists the servers whose status is not UP, as "backend/server
// STATUS CHECK". A server without a health check ("no check") is not
// listed: haproxy sends it traffic as if it were up.
func (rep ProbeReport) NotUp() []string {
	var out []string
	for _, s := range rep.Servers {
		if !strings.HasPrefix(s.Status, "UP") && s.Status != "no check" {
			out = append(out, fmt.Sprintf("%s/%s %s %s", s.Backend, s.Server, s.Status, s.Check))
		}
	}
	return out
}

// CheckTally counts the servers by last check status ("L7OK 3"), in
// order of first appearance; a server without a check counts as "no
// check". Right after a reload a check may still be INI (not run yet).
func (rep ProbeReport) CheckTally() string {
	counts := map[string]int{}
	var order []string
	for _, s := range rep.Servers {
		c := s.Check
		if c == "" {
			c = "no check"
		}
		if counts[c] == 0 {
			order = append(order, c)
		}
		counts[c]++
	}
	parts := make([]string, len(order))
	for i, c := range order {
		parts[i] = fmt.Sprintf("%s %d", c, counts[c])
	}
	return strings.Join(parts, ", ")
}

// detail is the probe stage's one-line summary.
func (rep ProbeReport) detail() string {
	d := fmt.Sprintf("probes: %d/%d OK", rep.OK, rep.Total)
	if len(rep.Servers) == 0 {
		return d
	}
	if notUp := rep.NotUp(); len(notUp) > 0 {
		return d + "; backends not UP: " + strings.Join(notUp, ", ")
	}
	return d + fmt.Sprintf("; backends: %d servers UP (%s)", len(rep.Servers), rep.CheckTally())
}

func (rep ProbeReport) firstError() string {
	for _, a := range rep.Attempts {
		if !a.OK && a.Error != "" {
			return fmt.Sprintf(" (first: %s: %s)", a.Target, a.Error)
		}
	}
	return ""
}
