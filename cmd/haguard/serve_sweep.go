package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/reload"
)

// sweepLoop is the daemon's periodic ghost sweep: one sweep at start, then
// one per sweep.interval and one per Trigger. Triggers that arrive while a
// sweep runs are coalesced into one (a channel buffered to 1). Sweeps never
// overlap: the loop's and SweepNow's share a mutex. It is an interim home
// until agent/ grows a Sweeper; then this becomes an adapter over it.
type sweepLoop struct {
	cur     *atomic.Pointer[pieces]
	metrics *api.Metrics
	log     *slog.Logger
	now     func() time.Time

	trigger chan struct{}
	mu      sync.Mutex // one sweep at a time
	last    atomic.Pointer[api.SweepReport]
	lastErr string // guarded by mu: log a failing sweep once, not every tick
}

func newSweepLoop(cur *atomic.Pointer[pieces], m *api.Metrics, log *slog.Logger) *sweepLoop {
	return &sweepLoop{cur: cur, metrics: m, log: log.With("loop", "sweep"), now: time.Now, trigger: make(chan struct{}, 1)}
}

// Run sweeps until ctx ends, then returns nil.
func (l *sweepLoop) Run(ctx context.Context) error {
	interval := l.cur.Load().cfg.Sweep.Interval.D()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_, _ = l.SweepNow(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-l.trigger:
		}
		// SIGHUP may have changed the interval.
		if d := l.cur.Load().cfg.Sweep.Interval.D(); d != interval {
			interval = d
			t.Reset(d)
		}
	}
}

// Trigger asks for a sweep soon; it never blocks.
func (l *sweepLoop) Trigger() {
	select {
	case l.trigger <- struct{}{}:
	default: // one is already pending
	}
}

// Last implements api.GhostSource.
func (l *sweepLoop) Last() (api.SweepReport, bool) {
	r := l.last.Load()
	if r == nil {
		return api.SweepReport{}, false
	}
	return *r, true
}

// SweepNow implements api.GhostSource: one sweep, recorded as the last,
// counted in the metrics, ghosts logged (and killed when sweep.kill_ghosts
// is on; it is off by default).
func (l *sweepLoop) SweepNow(ctx context.Context) (api.SweepReport, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.cur.Load()
	rep, err := p.sweeper.Sweep(ctx)
	if err != nil {
		if msg := err.Error(); msg != l.lastErr {
			l.log.Warn("sweep failed", "err", err)
			l.lastErr = msg
		}
		return api.SweepReport{}, err
	}
	if l.lastErr != "" {
		l.log.Info("sweep works again")
		l.lastErr = ""
	}
	r := api.SweepReport{At: l.now().UTC(), Counts: map[string]int{}, Processes: rep.Processes}
	var bad []reload.Process
	for _, pr := range rep.Processes {
		r.Counts[pr.Class]++
		if pr.Class == reload.ClassGhost || pr.Class == reload.ClassDivergent {
			bad = append(bad, pr)
		}
	}
	l.last.Store(&r)
	l.metrics.ObserveSweep(r)
	// haguard_config_info follows edits made outside the API too.
	if sha, err := (apiAdapter{cur: l.cur}).RunningSHA256(ctx); err == nil {
		l.metrics.SetConfig(sha)
	}
	for _, g := range bad {
		l.log.Warn("ghost haproxy process", "pid", g.PID, "class", g.Class, "reason", g.Reason, "exe", g.Exe, "cmdline", g.Cmdline)
	}
	if len(bad) > 0 && p.cfg.Sweep.KillGhosts {
		if err := p.sweeper.Kill(ctx, bad); err != nil {
			l.log.Warn("kill ghosts", "err", err)
		}
	}
	return r, nil
}
