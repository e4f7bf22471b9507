package reload

import (
	"context"
	"fmt"
	"time"
)

// TooSoonError refuses a reload inside reload.min_interval when the
// caller asked not to wait (--no-wait).
type TooSoonError struct {
	// Since is how long ago the running generation started; Wait how
	// much of the interval is left.
	Since, Wait, MinInterval time.Duration
}

func (e *TooSoonError) Error() string {
	return fmt.Sprintf("the last reload was %s ago and reload.min_interval is %s: try again in %s (or run without --no-wait to wait)",
		e.Since.Round(time.Second), e.MinInterval, e.Wait.Round(100*time.Millisecond))
}

// StillLoadingError refuses a reload while haproxy is still loading the
// previous one: systemd shows the unit "reloading", which HAProxy 3.1+
// brackets its load with (RELOADING=1 ... READY=1), or the master CLI
// answers nothing while it re-executes (2.6). HAProxy 3.1 refuses an
// overlapping reload itself; haguard says so before touching anything.
type StillLoadingError struct {
	Unit, Why string
}

func (e *StillLoadingError) Error() string {
	return fmt.Sprintf("haproxy is still loading the previous reload (%s): try again once unit %s is active", e.Why, e.Unit)
}

// spaceOut keeps reloads apart: it refuses while haproxy still loads the
// previous reload, and waits until reload.min_interval has passed since
// the running generation started (fails fast with Options.NoWait). The
// unit's own reload job (InReloadJob: systemd shows that very job as
// "reloading", and it cannot wait on itself) and rollbacks (a confirm
// watcher's must never be held back) skip it. The lock is held.
func (t *txn) spaceOut(ctx context.Context) error {
	if t.opt.InReloadJob || t.opt.candidateSet != nil || t.opt.resolving != "" {
		return nil
	}
	if u, err := t.Reloader.deps.Unit.UnitState(ctx, t.settings.Unit); err == nil && u.ActiveState == "reloading" {
		return &StillLoadingError{Unit: t.settings.Unit, Why: "unit " + t.settings.Unit + " is reloading"}
	}
	if t.settings.MinInterval <= 0 {
		return nil
	}
	g, err := t.Reloader.deps.Master.ShowProc(ctx)
	if err != nil || len(g.Workers) == 0 {
		return nil // settle will say what is wrong with the master
	}
	since := g.Workers[0].Uptime
	for _, w := range g.Workers[1:] {
		since = min(since, w.Uptime)
	}
	// show proc prints whole seconds: the true age is up to 1 s more,
	// so waiting for the printed one never waits too little.
	wait := t.settings.MinInterval - since
	if wait <= 0 {
		return nil
	}
	if t.opt.NoWait {
		return &TooSoonError{Since: since, Wait: wait, MinInterval: t.settings.MinInterval}
	}
	t.prog.waitingFor("reload.min_interval (%s): the last reload was %s ago, waiting %s", t.settings.MinInterval, since.Round(time.Second), wait.Round(100*time.Millisecond))
	t.log.Info("waiting out reload.min_interval", "id", t.res.ID, "since_last", since, "wait", wait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("waiting out reload.min_interval: %w", ctx.Err())
	case <-timer.C:
		return nil
	}
}
