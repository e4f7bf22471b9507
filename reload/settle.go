package reload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// pollEvery is how long to wait before asking the master again, after
// waiting for elapsed. A small config re-executes in some 60 ms, during
// which the master refuses connections (free to retry); polling every 5 ms
// for the first seconds keeps settle within a few ms of the new
// generation, and a long reload (a large config) is then asked less often.
func pollEvery(elapsed time.Duration) time.Duration {
	if elapsed < 2*time.Second {
		return 5 * time.Millisecond
	}
	return 25 * time.Millisecond
}

// baseline is the unit as it was before a reload: the master's generation
// and the unit's StatusText, which settle compares against.
type baseline struct {
	gen    Generation
	status string // "" when systemd could not be asked
}

// readBaseline reads the generation (waiting out a busy master, see
// currentGeneration) and, at the same time, the unit's status.
func (t *txn) readBaseline(ctx context.Context) (baseline, error) {
	stc := make(chan string, 1)
	go func() { stc <- t.unitStatus(ctx) }()
	g, err := t.currentGeneration(ctx)
	return baseline{gen: g, status: <-stc}, err
}

func (t *txn) unitStatus(ctx context.Context) string {
	st, err := t.r.d.Unit.UnitState(ctx, t.r.s.Unit)
	if err != nil {
		return ""
	}
	return st.StatusText
}

// settle waits for proof that the new config runs. A job result "done"
// proves nothing (a reload whose config fails to load still ends "done"),
// so success needs all of: the master's reload counter went up, its failed
// counter did not, the master is the same process, the current workers are
// all new, the unit is no longer reloading, and its StatusText did not
// turn to "failed" (b was read before the reload was asked for).
//
// "No longer reloading" matters from HAProxy 3.1 on: the master lists the
// new worker under "# workers" as soon as it is forked, while that worker
// is still loading the config, and counts the failure only once the load
// failed. The master brackets a reload with sd_notify RELOADING=1 (sent
// before the fork) and READY=1 (after the load, with "Reload failed!" on
// failure), so systemd shows the unit "reloading" until the outcome is
// known. systemd handles its notify socket before bus requests, so the
// state read after the new worker was seen cannot miss RELOADING=1; show
// proc is then read once more, to take the counters after the outcome.
func (t *txn) settle(ctx context.Context, b baseline) (Generation, string, error) {
	sctx, cancel := context.WithTimeout(ctx, t.r.s.SettleTimeout)
	defer cancel()
	before, beforeStatus := b.gen, b.status
	begin := t.r.d.Now()
	var last Generation
	var lastErr error
	reloading := false
	// looksNew: the counter moved and every current worker is new.
	looksNew := func(g Generation) bool { return g.Reloads > before.Reloads && newWorkersUp(before, g) }
	for {
		g, err := t.r.d.Master.ShowProc(sctx)
		lastErr = err
		if err == nil {
			last = g
			if err := t.badGeneration(ctx, before, g); err != nil {
				return g, "", err
			}
			if looksNew(g) {
				st, err := t.r.d.Unit.UnitState(sctx, t.r.s.Unit)
				if err != nil {
					return g, "", fmt.Errorf("read unit state: %w", err)
				}
				if st.ActiveState == "failed" {
					return g, "", fmt.Errorf("%w: unit %s is failed: %s", ErrBroken, t.r.s.Unit, st.StatusText)
				}
				if statusFailed(st.StatusText) && !statusFailed(beforeStatus) {
					return g, "", fmt.Errorf("unit status says %q%s", st.StatusText, t.startupLogs(ctx))
				}
				reloading = st.ActiveState == "reloading"
				if !reloading {
					// The outcome is known: confirm it with counters read after it.
					g2, err := t.r.d.Master.ShowProc(sctx)
					lastErr = err
					if err == nil {
						last = g2
						if err := t.badGeneration(ctx, before, g2); err != nil {
							return g2, "", err
						}
						if looksNew(g2) {
							return g2, settleDetail(g2, t.r.d.Now()), nil
						}
					}
				}
			}
		}
		select {
		case <-sctx.Done():
			switch {
			case ctx.Err() != nil:
				return last, "", ctx.Err()
			case lastErr != nil:
				return last, "", fmt.Errorf("no new generation within %s: master CLI: %w", t.r.s.SettleTimeout, lastErr)
			case reloading:
				return last, "", fmt.Errorf("no outcome within %s: unit %s still reloading (reloads %d -> %d, %d new workers up)%s",
					t.r.s.SettleTimeout, t.r.s.Unit, before.Reloads, last.Reloads, len(last.Workers), t.startupLogs(ctx))
			}
			return last, "", fmt.Errorf("no new generation within %s: reloads %d -> %d, %d workers up%s",
				t.r.s.SettleTimeout, before.Reloads, last.Reloads, len(last.Workers), t.startupLogs(ctx))
		case <-time.After(pollEvery(t.r.d.Now().Sub(begin))):
		}
	}
}

// badGeneration is a show proc that rules the reload out: another master
// (a restart, not a reload) or a failed load.
func (t *txn) badGeneration(ctx context.Context, before, g Generation) error {
	if before.MasterPID != 0 && g.MasterPID != before.MasterPID {
		return fmt.Errorf("master restarted (pid %d -> %d): this was not a reload", before.MasterPID, g.MasterPID)
	}
	if g.Failed > before.Failed {
		return fmt.Errorf("master reports a failed reload (failed %d -> %d); the old workers keep serving the old config%s",
			before.Failed, g.Failed, t.startupLogs(ctx))
	}
	return nil
}

// newWorkersUp: at least one current worker, and none of them was a
// current worker before the reload.
func newWorkersUp(before, after Generation) bool {
	if len(after.Workers) == 0 {
		return false
	}
	old := map[int]bool{}
	for _, w := range before.Workers {
		old[w.PID] = true
	}
	for _, w := range after.Workers {
		if old[w.PID] {
			return false
		}
	}
	return true
}

func statusFailed(s string) bool { return strings.Contains(strings.ToLower(s), "fail") }

func settleDetail(g Generation, now time.Time) string {
	d := fmt.Sprintf("generation %d running (%d workers)", g.Reloads, len(g.Workers))
	if n := len(g.OldWorkers); n > 0 {
		var oldest time.Duration
		for _, w := range g.OldWorkers {
			oldest = max(oldest, w.Uptime)
		}
		d += fmt.Sprintf("; old generation draining (%d workers, since %s)", n, now.Add(-oldest).UTC().Format(time.RFC3339))
	} else {
		d += "; no old workers draining"
	}
	return d
}

// startupLogs returns haproxy's own words about the failed load, prefixed
// for appending to an error, or "".
func (t *txn) startupLogs(ctx context.Context) string {
	if t.r.d.Logs == nil {
		return ""
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	s, err := t.r.d.Logs.StartupLogs(lctx)
	if err != nil || strings.TrimSpace(s) == "" {
		return ""
	}
	return ": haproxy says: " + lastLines(s, 5)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func (t *txn) sweep(ctx context.Context) (string, error) {
	rep, err := t.r.d.Sweeper.Sweep(ctx)
	if err != nil {
		return "", fmt.Errorf("sweep: %w", err)
	}
	killed := 0
	if bad := badProcs(rep.Processes); len(bad) > 0 && t.opt.KillGhosts {
		if err := t.r.d.Sweeper.Kill(ctx, bad); err != nil {
			return "", fmt.Errorf("kill ghosts: %w", err)
		}
		killed = len(bad)
		if rep, err = t.r.d.Sweeper.Sweep(ctx); err != nil {
			return "", fmt.Errorf("sweep after kill: %w", err)
		}
	}
	t.res.Processes = append(t.res.Processes[:0], rep.Processes...)
	counts := map[string]int{}
	for _, p := range rep.Processes {
		counts[p.Class]++
	}
	detail := fmt.Sprintf("ghosts: %d, divergent: %d, current: %d, draining: %d",
		counts[ClassGhost], counts[ClassDivergent], counts[ClassCurrent], counts[ClassDraining])
	if killed > 0 {
		detail += fmt.Sprintf("; killed %d", killed)
	}
	if bad := badProcs(rep.Processes); len(bad) > 0 {
		var b strings.Builder
		for i, p := range bad {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "pid %d %s (%s)", p.PID, p.Class, p.Reason)
		}
		hint := " (--kill-ghosts kills them)"
		if t.opt.KillGhosts {
			hint = " (still there after kill)"
		}
		return detail, fmt.Errorf("%d ghost or divergent processes: %s%s", len(bad), b.String(), hint)
	}
	return detail, nil
}

func badProcs(ps []Process) []Process {
	var bad []Process
	for _, p := range ps {
		if p.Class == ClassGhost || p.Class == ClassDivergent {
			bad = append(bad, p)
		}
	}
	return bad
}

func (t *txn) probe(ctx context.Context) (string, error) {
	if !t.r.s.Probe {
		return "probing disabled (reload.probe: false)", nil
	}
	rep, err := t.r.d.Prober.Probe(ctx)
	if rep.Attempts == nil {
		rep.Attempts = []ProbeAttempt{}
	}
	t.res.Probes = rep
	if err != nil {
		return "", fmt.Errorf("probe: %w", err)
	}
	detail := fmt.Sprintf("probes: %d/%d OK", rep.OK, rep.Total)
	var notUp []string
	checks := map[string]int{}
	var order []string
	for _, s := range rep.Servers {
		if !strings.HasPrefix(s.Status, "UP") {
			notUp = append(notUp, fmt.Sprintf("%s/%s %s %s", s.Backend, s.Server, s.Status, s.Check))
		}
		c := s.Check
		if c == "" {
			c = "no check"
		}
		if checks[c] == 0 {
			order = append(order, c)
		}
		checks[c]++
	}
	if len(rep.Servers) > 0 {
		if len(notUp) == 0 {
			var parts []string
			for _, c := range order {
				parts = append(parts, fmt.Sprintf("%s %d", c, checks[c]))
			}
			// Right after a reload a check may still be INI (not run yet).
			detail += fmt.Sprintf("; backends: %d servers UP (%s)", len(rep.Servers), strings.Join(parts, ", "))
		} else {
			detail += "; backends not UP: " + strings.Join(notUp, ", ")
		}
	}
	if rep.Failed > 0 {
		return detail, fmt.Errorf("%d of %d probes failed%s", rep.Failed, rep.Total, firstProbeError(rep))
	}
	return detail, nil
}

func firstProbeError(rep ProbeReport) string {
	for _, a := range rep.Attempts {
		if !a.OK && a.Error != "" {
			return fmt.Sprintf(" (first: %s: %s)", a.Target, a.Error)
		}
	}
	return ""
}

var errNoSnapshot = errors.New("no snapshot to roll back to")
