package reload

import (
	"context"
	"fmt"
	"os"
	"time"
)

// A host that haguard has never reloaded has no record of what runs. When
// nothing suggests otherwise, the config set on disk is what runs: every
// file of it is older than the running generation (which read them when
// it started). haguard then adopts it as the known-good set: a first
// reload that fails rolls back to it, and status reports drift only on
// evidence.

// mtimeSlack covers file systems whose mtime is coarse, and the moment
// between the master reading the config and its worker starting.
const mtimeSlack = time.Second

// msTime prints the times compared, to the millisecond: whole seconds
// made a file changed within the slack read as changed "after" a start
// printed a second later.
const msTime = "2006-01-02T15:04:05.000Z07:00"

// generationStart is when g's current generation started: that of its
// oldest current worker (zero when unknown).
func generationStart(g Generation, now time.Time) time.Time {
	var oldest time.Duration
	for _, w := range g.Workers {
		oldest = max(oldest, w.Uptime)
	}
	if oldest == 0 {
		return time.Time{}
	}
	return now.Add(-oldest)
}

// adoptable says whether the files of m are what g runs: each exists and
// was last written before g's generation started. why says what speaks
// against it.
func adoptable(g Generation, m Manifest, now time.Time) (bool, string) {
	start := generationStart(g, now)
	if start.IsZero() {
		return false, "when the running generation started is unknown"
	}
	for _, e := range m {
		st, err := os.Stat(e.Path)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", e.Path, err)
		}
		if mt := st.ModTime(); mt.After(start.Add(-mtimeSlack)) {
			when := "after"
			if !mt.After(start) {
				when = fmt.Sprintf("less than %s before", mtimeSlack) // too close to tell
			}
			return false, fmt.Sprintf("%s changed at %s, %s the running generation started (%s)",
				e.Path, mt.UTC().Format(msTime), when, start.UTC().Format(msTime))
		}
	}
	return true, ""
}

// adopt records m (whose contents are data) as what g runs: every file in
// the history, then running.json marked adopted.
func (r *Reloader) adopt(g Generation, m Manifest, data map[string][]byte) (Running, error) {
	for _, e := range m {
		if b := data[e.Path]; b != nil {
			if _, err := r.store.putBlob(b); err != nil {
				return Running{}, err
			}
		}
	}
	run := Running{SHA256: m.Identity(), Target: r.settings.Target, MasterPID: g.MasterPID, Reloads: g.Reloads,
		Time: r.now().UTC(), ID: "adopted", Manifest: m, Worker: newestWorker(g), Adopted: true}
	return run, r.store.setRunning(run)
}

// adoptDisk takes the set on disk (the -f files as they were before this
// run, and the refs) as what runs when nothing suggests otherwise, so
// that a first reload has a known-good set to roll back to. It returns a
// note for the check stage's detail ("" when nothing was adopted).
func (t *txn) adoptDisk(p *plan) string {
	old := expandFiles(t.settings.Files, nil)
	m := manifestOf(old, p.refs, func(path string) ([]byte, error) {
		if b := p.disk[path]; b != nil {
			return b, nil
		}
		return nil, os.ErrNotExist
	})
	ok, why := adoptable(p.before.gen, m, t.now())
	if !ok {
		t.log.Info("the config on disk is not adopted as known-good", "why", why)
		return ""
	}
	run, err := t.adopt(p.before.gen, m, p.disk)
	if err != nil {
		t.log.Warn("adopting the config on disk", "err", err)
		return ""
	}
	p.running = &run
	return fmt.Sprintf("; the set on disk (%s) is untouched since the running generation started: adopted as known-good", short(run.SHA256))
}

// adoptLocked records m as adopted if the lock is free at once (a reload
// that holds it adopts for itself) and the state dir is writable.
func (r *Reloader) adoptLocked(ctx context.Context, g Generation, m Manifest) error {
	lk, err := acquireLock(ctx, r.settings.StateDir, false, 0,
		otherHolder("haguard status, adopting the config on disk", r.now()), nil)
	if err != nil {
		return err
	}
	defer lk.release()
	data := map[string][]byte{}
	for _, e := range m {
		b, err := os.ReadFile(e.Path)
		if err != nil {
			return err
		}
		if sha(b) != e.SHA256 {
			return fmt.Errorf("%s changed while it was read", e.Path)
		}
		data[e.Path] = b
	}
	_, err = r.adopt(g, m, data)
	return err
}
