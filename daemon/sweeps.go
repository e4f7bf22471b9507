package daemon

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/agent/sweep"
	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
)

// sweeps is the daemon's ghost sweep: agent/sweep's Sweeper (a sweep at
// start, every sweep.interval, on Trigger with coalescing, never two at
// once) over the procs scanner `haguard ghosts` uses. SIGHUP builds a new
// Sweeper from the new haguard.yaml and Run swaps it in. Each result
// updates the metrics, the config sha256, and logs one warning per ghost
// or divergent process. Killing is on only with sweep.kill_ghosts.
type sweeps struct {
	metrics *api.Metrics
	log     *slog.Logger
	// hash is the running config's sha256 (haguard_config_info follows
	// edits made outside the API too).
	hash func(context.Context) (string, error)
	// afterSweep, if set, runs after every sweep, failed or not (the
	// ledger counts command-line reloads then). Set it before Run.
	afterSweep func()
	// onConfig, if set, gets the running config's sha256 after every
	// sweep that read it (runningLint.follow). Set it before Run.
	onConfig func(sha string)

	cur  atomic.Pointer[sweep.Sweeper]
	swap chan struct{} // buffered 1: a new Sweeper is waiting
	last atomic.Pointer[api.SweepReport]
}

func newSweeps(m *api.Metrics, log *slog.Logger, hash func(context.Context) (string, error)) *sweeps {
	return &sweeps{metrics: m, log: log.With("loop", "sweep"), hash: hash, swap: make(chan struct{}, 1)}
}

// build makes a Sweeper for h, with the scanner `haguard ghosts` uses.
func (s *sweeps) build(h *host.Host) *sweep.Sweeper {
	cfg := h.Config()
	gg := newGenGuard(h, s.metrics, s.log)
	return sweep.New(h.Scanner(), killerFor(cfg, s.log), sweep.Options{Interval: cfg.Sweep.Interval.D(), Logger: s.log,
		OnResult: func(res sweep.Result) { s.recordWith(res, gg) }})
}

// killerFor is nil unless sweep.kill_ghosts is on (it is off by default):
// the Sweeper then only reports.
func killerFor(cfg config.Config, log *slog.Logger) sweep.Killer {
	if !cfg.Sweep.KillGhosts {
		return nil
	}
	return procs.NewKiller(cfg.Sweep.KillGrace.D(), log)
}

func (s *sweeps) newSweeper(scan sweep.Scanner, kill sweep.Killer, cfg config.Config) *sweep.Sweeper {
	return sweep.New(scan, kill, sweep.Options{Interval: cfg.Sweep.Interval.D(), Logger: s.log, OnResult: s.record})
}

// set installs sw: the first call before Run, later ones (SIGHUP) make
// Run stop the old Sweeper and start sw.
func (s *sweeps) set(sw *sweep.Sweeper) {
	if s.cur.Swap(sw) == nil {
		return
	}
	select {
	case s.swap <- struct{}{}:
	default: // a swap is already pending; it will pick up sw
	}
}

// Run runs the current Sweeper until ctx ends, restarting on set.
func (s *sweeps) Run(ctx context.Context) error {
	for {
		sw := s.cur.Load()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sw.Run(rctx) }()
		select {
		case <-ctx.Done():
			cancel()
			return <-done
		case <-s.swap:
			cancel()
			if err := <-done; err != nil {
				return err
			}
		}
	}
}

// Trigger asks for a sweep soon (after a transaction); it never blocks.
func (s *sweeps) Trigger() { s.cur.Load().Trigger() }

// Last implements api.GhostSource.
func (s *sweeps) Last() (api.SweepReport, bool) {
	r := s.last.Load()
	if r == nil {
		return api.SweepReport{}, false
	}
	return *r, true
}

// SweepNow implements api.GhostSource.
func (s *sweeps) SweepNow(ctx context.Context) (api.SweepReport, error) {
	res := s.cur.Load().Now(ctx)
	if res.Err != nil {
		return api.SweepReport{}, res.Err
	}
	if r := s.last.Load(); r != nil && r.At.Equal(res.Started.UTC()) {
		return *r, nil // record ran (OnResult): with the generations
	}
	return toSweepReport(res), nil
}

// record is the Sweeper's OnResult.
func (s *sweeps) record(res sweep.Result) { s.recordWith(res, nil) }

// recordWith is record, with the old generations assessed (and
// escalated) by gg when it is set.
func (s *sweeps) recordWith(res sweep.Result, gg *genGuard) {
	if s.afterSweep != nil {
		defer s.afterSweep()
	}
	if res.Err != nil {
		return // the Sweeper logged it; the last good sweep stays
	}
	r := toSweepReport(res)
	if gg != nil {
		r.Generations = gg.observe(res)
	}
	s.last.Store(&r)
	s.metrics.ObserveSweep(r)
	for _, p := range res.Report.Processes {
		if p.Class == procs.Ghost || p.Class == procs.Divergent || p.Class == procs.Conflict {
			s.log.Warn("ghost haproxy process", "pid", p.PID, "class", p.Class, "reason", p.Reason,
				"exe", p.Exe, "cmdline", p.Cmdline, "listen", p.Listen)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusHashTimeout)
	defer cancel()
	if sha, err := s.hash(ctx); err == nil {
		s.metrics.SetConfig(sha)
		if s.onConfig != nil {
			s.onConfig(sha)
		}
	}
}

// statusHashTimeout bounds reading the config for its hash.
const statusHashTimeout = 5 * time.Second

func toSweepReport(res sweep.Result) api.SweepReport {
	c := res.Report.Counts
	ps := res.Report.Processes
	if ps == nil {
		ps = []procs.Process{}
	}
	return api.SweepReport{At: res.Started.UTC(), Processes: ps, Counts: c.ByClass()}
}
