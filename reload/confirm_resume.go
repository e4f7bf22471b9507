package reload

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ResumeWindow is for a daemon that starts (haguard serve): a
// confirmation window left open (pending.json) by a run before it must
// not be left without a watcher, or it would never close and every
// reload would stay refused. Past its deadline, the provisional reload
// is rolled back now, as its watcher would have; before it, a watcher
// that is not running (its transient unit gone with a reboot, or
// stopped) is started again. It says what it did ("" when no window is
// open).
func (r *Reloader) ResumeWindow(ctx context.Context) (string, error) {
	p, err := r.store.pending()
	switch {
	case isNotExist(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("pending confirmation: %w", err)
	}
	if !r.now().Before(p.Deadline) {
		out, err := r.resolve(ctx, p, fmt.Sprintf("not confirmed within the window (deadline %s, found past it when haguard serve started)",
			p.Deadline.UTC().Format(time.RFC3339)))
		if err != nil {
			return "", fmt.Errorf("reload %s: deadline passed, rollback: %w", p.ID, err)
		}
		return fmt.Sprintf("reload %s: deadline %s had passed: %s", p.ID, p.Deadline.UTC().Format(time.RFC3339), out.Result), nil
	}
	if p.Watcher != "" {
		if u, err := r.deps.Unit.UnitState(ctx, p.Watcher); err == nil && (u.ActiveState == "active" || u.ActiveState == "activating") {
			return fmt.Sprintf("reload %s awaits confirmation until %s; its watcher %s runs", p.ID, p.Deadline.UTC().Format(time.RFC3339), p.Watcher), nil
		}
	}
	if r.deps.Watcher == nil {
		return "", errors.New("a confirmation window is open and this haguard cannot start its watcher (no systemd)")
	}
	lk, err := acquireLock(ctx, r.settings.StateDir, true, r.settings.LockTimeout, otherHolder("haguard serve resuming a confirmation window", r.now()), nil)
	if err != nil {
		return "", err
	}
	defer lk.release()
	if q, err := r.store.pending(); err != nil || q.ID != p.ID {
		return fmt.Sprintf("reload %s: its window closed meanwhile", p.ID), nil
	}
	name, err := r.deps.Watcher.StartWatch(ctx, p.ID, p.Deadline)
	if err != nil {
		return "", fmt.Errorf("reload %s: start its watcher again: %w", p.ID, err)
	}
	p.Watcher = name
	if err := r.store.setPending(p); err != nil {
		return "", err
	}
	return fmt.Sprintf("reload %s awaits confirmation until %s; its watcher was not running and %s was started", p.ID, p.Deadline.UTC().Format(time.RFC3339), name), nil
}
