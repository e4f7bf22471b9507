package reload

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// WatchOutcome is how a confirmation window ended for its watcher.
type WatchOutcome struct {
	// Result is confirmed, rolled_back or rollback_failed ("" when the
	// watcher stopped before the window closed).
	Result string
	Reason string
	// Rollback is the rollback transaction (nil unless one ran).
	Rollback *Result
}

// Watch keeps provisional reload id under watch until it is confirmed,
// its deadline passes, or it degrades: every `every` it probes through
// the listeners and reads the servers' health; two bad rounds in a row
// (so one lost connection is not a verdict) roll back at once, and so
// does the deadline. It returns when the window is closed, or when ctx
// ends (the window then stays open: a reload stays refused until someone
// confirms or rolls back).
func (r *Reloader) Watch(ctx context.Context, id string, every time.Duration) (WatchOutcome, error) {
	if every <= 0 {
		every = 5 * time.Second
	}
	bad := 0
	for {
		p, err := r.store.pending()
		switch {
		case isNotExist(err) || err == nil && p.ID != id:
			return r.closedOutcome(id), nil
		case err != nil:
			return WatchOutcome{}, fmt.Errorf("pending confirmation: %w", err)
		}
		now := r.now()
		if !now.Before(p.Deadline) {
			return r.resolve(ctx, p, fmt.Sprintf("not confirmed within the window (deadline %s)", p.Deadline.UTC().Format(time.RFC3339)))
		}
		if why := r.degraded(ctx, p); why != "" {
			if bad++; bad >= 2 {
				return r.resolve(ctx, p, "degraded during the confirmation window: "+why)
			}
			r.log.Warn("confirmation window: degraded, looking again", "id", id, "why", why)
		} else {
			bad = 0
		}
		wait := min(every, p.Deadline.Sub(r.now()))
		if bad > 0 {
			wait = min(wait, time.Second)
		}
		select {
		case <-ctx.Done():
			return WatchOutcome{}, ctx.Err()
		case <-time.After(max(wait, 0)):
		}
	}
}

// degraded probes through the listeners and reads the servers: it says
// what is wrong compared with the commit ("" when nothing is).
func (r *Reloader) degraded(ctx context.Context, p Pending) string {
	var servers []ServerHealth
	var probeErr string
	if r.settings.Probe {
		rep, err := r.deps.Prober.Probe(ctx, nil, nil)
		if err != nil {
			r.log.Warn("confirmation window: probe", "err", err)
			return ""
		}
		if rep.Failed > 0 {
			probeErr = fmt.Sprintf("%d of %d probes failed%s", rep.Failed, rep.Total, rep.firstError())
		}
		servers = rep.Servers
	} else {
		s, err := r.deps.Prober.Health(ctx)
		if err != nil {
			r.log.Warn("confirmation window: backend health", "err", err)
		}
		servers = s
	}
	lost := lostBackends(p.Servers, servers)
	var why []string
	if probeErr != "" {
		why = append(why, probeErr)
	}
	why = append(why, lost...)
	return strings.Join(why, "; ")
}

// lostBackends lists the backends that had a server UP at commit and
// have none now.
func lostBackends(before, now []ServerHealth) []string {
	wasUp := map[string]bool{}
	for _, s := range before {
		if s.healthy() {
			wasUp[s.Backend] = true
		}
	}
	byBackend := map[string][]ServerHealth{}
	var order []string
	for _, s := range now {
		if _, ok := byBackend[s.Backend]; !ok {
			order = append(order, s.Backend)
		}
		byBackend[s.Backend] = append(byBackend[s.Backend], s)
	}
	var out []string
	for _, be := range order {
		ss := byBackend[be]
		up := false
		for _, s := range ss {
			up = up || s.healthy()
		}
		if wasUp[be] && !up {
			out = append(out, fmt.Sprintf("backend %s lost its UP servers (%s)", be, describe(ss)))
		}
	}
	return out
}

// resolve rolls provisional reload p back, as `haguard rollback ID`
// would; the rollback transaction records the outcome on p's entry.
func (r *Reloader) resolve(ctx context.Context, p Pending, reason string) (WatchOutcome, error) {
	r.log.Warn("confirmation window: rolling back", "id", p.ID, "reason", reason)
	res, err := r.RollbackTo(ctx, p.ID, Options{Who: "haguard confirm-within watcher", Reason: reason, resolving: p.ID})
	out := r.closedOutcome(p.ID)
	out.Rollback = &res
	if out.Result == "" {
		// Refused before it ran (confirmed meanwhile, or the lock).
		return out, err
	}
	return out, nil
}

// closedOutcome reads how id's window closed from its entry.
func (r *Reloader) closedOutcome(id string) WatchOutcome {
	e, err := r.store.entry(id)
	if err != nil || e.Confirmation == nil {
		return WatchOutcome{}
	}
	return WatchOutcome{Result: e.Confirmation.Result, Reason: e.Confirmation.Reason}
}
