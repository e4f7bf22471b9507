// Package sweep runs the ghost sweep periodically for `haguard serve`:
// a sweep at start, one per interval, and one on demand (Trigger, coalesced),
// optionally killing the ghosts found. The last result is kept for the API
// and metrics.
//
//	s := sweep.New(scanner, killer, sweep.Options{Interval: 30 * time.Second, Logger: log})
//	g.Go(func() error { return s.Run(ctx) }) // returns nil when ctx ends
//	s.Trigger()                              // e.g. after a reload
//	res, ok := s.Last()                      // the latest Result
//	res = s.Now(ctx)                         // sweep synchronously (API handler)
package sweep

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/haguard/haguard/agent/procs"
)

// Scanner runs one sweep (*procs.Scanner satisfies it).
type Scanner interface {
	Sweep(ctx context.Context) (procs.Report, error)
}

// Killer kills a report's ghosts (*procs.Killer satisfies it).
type Killer interface {
	KillGhosts(ctx context.Context, r procs.Report) []procs.KillResult
}

// Result is one sweep.
type Result struct {
	Report procs.Report `json:"report"`
	// Kills are the kill outcomes when killing is on and ghosts were found.
	Kills []procs.KillResult `json:"kills,omitempty"`
	// Err is why the sweep could not run (Report is then empty).
	Err      error         `json:"-"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	// Cause is "start", "interval", "trigger" or "now".
	Cause string `json:"cause"`
}

// KillFailed reports whether a ghost survived the kill.
func (r Result) KillFailed() bool {
	for _, k := range r.Kills {
		if k.Outcome == procs.Failed {
			return true
		}
	}
	return false
}

// Options tune a Sweeper.
type Options struct {
	// Interval between periodic sweeps; it must be positive.
	Interval time.Duration
	Logger   *slog.Logger
	// OnResult, if set, is called after every sweep (metrics), from the
	// goroutine that ran it.
	OnResult func(Result)
}

// Sweeper runs sweeps one at a time. Build it with New.
type Sweeper struct {
	scan     Scanner
	kill     Killer
	interval time.Duration
	log      *slog.Logger
	onResult func(Result)

	trigger chan struct{} // buffered 1: pending triggers coalesce
	run     sync.Mutex    // one sweep at a time
	mu      sync.Mutex
	last    Result
	have    bool
}

// New returns a Sweeper. kill may be nil: ghosts are then only reported.
func New(scan Scanner, kill Killer, o Options) *Sweeper {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{scan: scan, kill: kill, interval: o.Interval, log: log, onResult: o.OnResult,
		trigger: make(chan struct{}, 1)}
}

// Run sweeps once, then every Interval and whenever Trigger was called,
// until ctx ends; then it returns nil. Sweeps never overlap.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	s.sweep(ctx, "start")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.sweep(ctx, "interval")
		case <-s.trigger:
			s.sweep(ctx, "trigger")
		}
	}
}

// Trigger asks Run for a sweep soon. It never blocks; triggers that
// arrive while one is pending coalesce into one sweep.
func (s *Sweeper) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Now sweeps at once in the caller's goroutine (waiting for a running
// sweep to finish first) and returns the result, which also becomes Last.
func (s *Sweeper) Now(ctx context.Context) Result { return s.sweep(ctx, "now") }

// Last returns the latest result; ok is false before the first sweep.
func (s *Sweeper) Last() (res Result, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.have
}

func (s *Sweeper) sweep(ctx context.Context, cause string) Result {
	s.run.Lock()
	defer s.run.Unlock()
	res := Result{Started: time.Now(), Cause: cause}
	res.Report, res.Err = s.scan.Sweep(ctx)
	switch {
	case res.Err != nil:
		s.log.Error("ghost sweep failed", "cause", cause, "err", res.Err)
	case s.kill != nil && res.Report.Counts.Ghost > 0:
		res.Kills = s.kill.KillGhosts(ctx, res.Report)
	}
	res.Duration = time.Since(res.Started)
	if res.Err == nil {
		c := res.Report.Counts
		lvl := slog.LevelDebug
		if !res.Report.Clean() {
			lvl = slog.LevelWarn
		}
		s.log.Log(ctx, lvl, "ghost sweep", "cause", cause, "current", c.Current, "draining", c.Draining,
			"ghost", c.Ghost, "divergent", c.Divergent, "conflict", c.Conflict, "other_unit", c.OtherUnit, "foreign", c.Foreign,
			"killed", len(res.Kills), "kill_failed", res.KillFailed(),
			"duration", res.Duration)
	}
	s.mu.Lock()
	s.last, s.have = res, true
	s.mu.Unlock()
	if s.onResult != nil {
		s.onResult(res)
	}
	return res
}
