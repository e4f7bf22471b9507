package reload

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Status is `haguard status`: the unit, the running generation, and drift
// between what runs and what is on disk.
type Status struct {
	Unit        string `json:"unit"`
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
	// StatusText is the unit's systemd StatusText (STATUS= from the
	// service); "" when it sent none. The JSON key is always present.
	StatusText string `json:"status_text"`
	MainPID    int    `json:"main_pid"`
	// Generation is the master's reload counter; -1 when unreadable.
	Generation int `json:"generation"`
	Failed     int `json:"failed_reloads"`
	Workers    int `json:"workers"`
	OldWorkers int `json:"old_workers"`
	// OldestDraining is when the oldest draining worker started.
	OldestDraining *time.Time `json:"oldest_draining,omitempty"`
	Target         string     `json:"target"`
	DiskSHA256     string     `json:"disk_sha256"`
	// RunningSHA256 is the config the running generation loaded, when
	// haguard knows it (empty otherwise).
	RunningSHA256 string `json:"running_sha256"`
	// Drift is true when the running generation was not loaded from the
	// bytes on disk, or haguard cannot tell; DriftFiles are the files of
	// the set that differ from what runs.
	Drift       bool     `json:"drift"`
	DriftReason string   `json:"drift_reason"`
	DriftFiles  []string `json:"drift_files,omitempty"`
	// Interrupted is the journal of a run that died mid-transaction.
	Interrupted *Journal `json:"interrupted,omitempty"`
	// JournalError: state_dir/journal.json is there but cannot be read
	// (a torn write): a run died and what it left is unknown. Every
	// reload refuses (exit 3) until `haguard reload
	// --forget-interrupted`.
	JournalError string `json:"journal_error,omitempty"`
	// Pending is a reload that awaits confirmation (--confirm-within).
	Pending *Pending `json:"pending,omitempty"`
	// Stuck says why the master looks stuck: it keeps the reload signal
	// pending (haproxy issue #3229); "" when it does not.
	Stuck string `json:"stuck,omitempty"`
	// InProgress is the transaction that holds the lock now (its journal
	// is then not a dead run's).
	InProgress *Progress `json:"in_progress,omitempty"`
	// Adopted: haguard never reloaded this haproxy, and took the set on
	// disk (untouched since the running generation started) as what runs.
	Adopted bool     `json:"adopted,omitempty"`
	Last    *Entry   `json:"last,omitempty"`
	Errors  []string `json:"errors"`
}

// Status reads the unit, the master and the state dir. Unreadable parts
// are listed in Status.Errors; the error is for a broken state dir only.
// With waitReload, a reload in progress is waited for (see
// unitAfterReload), so that the outcome is reported; without it (the
// API's /v1/status, which must not block) the transition is.
func (r *Reloader) Status(ctx context.Context, waitReload bool) (Status, error) {
	st := Status{Unit: r.settings.Unit, Target: r.settings.Target, Generation: -1, Errors: []string{}}
	unit := r.deps.Unit.UnitState
	if waitReload {
		unit = r.unitAfterReload
	}
	if u, err := unit(ctx, r.settings.Unit); err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("unit: %v", err))
	} else {
		st.ActiveState, st.SubState, st.StatusText, st.MainPID = u.ActiveState, u.SubState, u.StatusText, u.MainPID
	}
	g, gerr := r.deps.Master.ShowProc(ctx)
	if gerr != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("master CLI: %v", gerr))
	} else {
		st.Generation, st.Failed, st.Workers, st.OldWorkers = g.Reloads, g.Failed, len(g.Workers), len(g.OldWorkers)
		var oldest time.Duration
		for _, w := range g.OldWorkers {
			oldest = max(oldest, w.Uptime)
		}
		if oldest > 0 {
			at := r.now().Add(-oldest).UTC()
			st.OldestDraining = &at
		}
	}
	if waitReload {
		st.Stuck = r.stuckMaster(ctx, st.MainPID)
	}
	if id, err := r.Identity(); err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("target: %v", err))
	} else {
		st.DiskSHA256 = id
	}
	run, rerr := r.store.running()
	switch {
	case rerr != nil && !isNotExist(rerr):
		return st, fmt.Errorf("state dir: %w", rerr)
	case gerr != nil:
		st.Drift, st.DriftReason = true, "cannot read the master: unknown"
	case rerr != nil:
		// Never reloaded by haguard: the set on disk is what runs unless
		// something says otherwise (a file written after the running
		// generation started); then it is adopted as known-good.
		m := r.diskManifest(Running{})
		if ok, why := adoptable(g, m, r.now()); !ok {
			st.Drift, st.DriftReason = true, "haguard has not reloaded this haproxy yet, and "+why
		} else {
			if err := r.adoptLocked(ctx, g, m); err != nil {
				r.log.Debug("the adopted config is not recorded", "err", err)
			}
			st.RunningSHA256, st.Adopted = m.Identity(), true
		}
	case !run.sameGeneration(g):
		st.Drift = true
		st.DriftReason = fmt.Sprintf("reloaded or restarted outside haguard (haguard saw %s, now %s)", run.generation(), describeGeneration(g))
	default:
		st.RunningSHA256 = run.SHA256
		if run.SHA256 != st.DiskSHA256 {
			st.Drift = true
			st.DriftFiles = run.manifest().Diff(r.diskManifest(run))
			st.DriftReason = fmt.Sprintf("%s edited without a reload (running %s, on disk %s)",
				strings.Join(st.DriftFiles, ", "), short(run.SHA256), short(st.DiskSHA256))
		}
	}
	if p, err := r.Pending(); err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("pending confirmation: %v", err))
	} else {
		st.Pending = p
	}
	j, jerr := r.store.journal()
	switch p := inProgress(r.settings.StateDir); {
	case p != nil:
		if jerr == nil && (j.PID == p.PID || p.PID == 0) {
			p.Stage = j.Stage
		}
		st.InProgress = p
	case jerr == nil:
		st.Interrupted = &j
	case !isNotExist(jerr):
		st.JournalError = jerr.Error()
	}
	if es, err := r.store.listing(); err == nil && len(es) > 0 {
		st.Last = &es[len(es)-1]
	}
	return st, nil
}

// unitAfterReload reads the unit's state; while it is "reloading" (a
// reload in progress: the master re-executes and refuses its CLI for a
// moment), it waits for the reload to end, up to the settle timeout, so
// that status reports the outcome rather than the transition.
func (r *Reloader) unitAfterReload(ctx context.Context, unit string) (UnitState, error) {
	wctx, cancel := context.WithTimeout(ctx, r.settings.SettleTimeout)
	defer cancel()
	begin := r.now()
	for {
		u, err := r.deps.Unit.UnitState(ctx, unit)
		if err != nil || u.ActiveState != "reloading" {
			return u, err
		}
		select {
		case <-wctx.Done():
			return u, nil // still reloading: reported as it is
		case <-time.After(pollEvery(r.now().Sub(begin))):
		}
	}
}

// Identity is the config set's identity as it is on disk: what status
// calls disk_sha256 and an API If-Match names (the sha256 of the main
// file for a set of one file). It is defined here, once.
func (r *Reloader) Identity() (string, error) {
	if _, err := os.Stat(r.settings.Target); r.settings.Target != "" && err != nil {
		return "", err
	}
	run, _ := r.store.running()
	return r.diskManifest(run).Identity(), nil
}

// diskManifest is the set on disk now: the config files of the -f
// arguments, and the files the running config loads (as haguard last
// recorded them).
func (r *Reloader) diskManifest(run Running) Manifest {
	var refs []string
	for _, e := range run.Manifest {
		if e.Ref {
			refs = append(refs, e.Path)
		}
	}
	return manifestOf(expandFiles(r.settings.Files, nil), refs, os.ReadFile)
}

// stuckMaster says whether pid keeps SIGUSR2 pending: seen twice, a
// second apart (a master takes it within milliseconds).
func (r *Reloader) stuckMaster(ctx context.Context, pid int) string {
	if r.deps.Signals == nil || pid <= 0 {
		return ""
	}
	for i := 0; ; i++ {
		pending, err := r.deps.Signals.ReloadPending(pid)
		if err != nil || !pending {
			return ""
		}
		if i == 1 {
			return fmt.Sprintf("master pid %d keeps SIGUSR2 (reload) pending and never takes it: it loads no config until restarted "+
				"(haproxy issue #3229). Remedy: `systemctl restart %s` at a quiet moment (it closes every connection), then upgrade haproxy",
				pid, r.settings.Unit)
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(time.Second):
		}
	}
}
