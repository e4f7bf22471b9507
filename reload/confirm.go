package reload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Commit-confirmed, as network gear has it (Junos `commit confirmed`):
// `reload --confirm-within D` commits provisionally. A watcher that runs
// outside the caller's session (a transient systemd unit) keeps probing
// and reading backend health through the window; `haguard confirm` makes
// the change final. No confirmation by the deadline, or a degradation
// during the window, rolls back to the config before it, as `haguard
// rollback ID` would, and the history says why.
//
// While a reload awaits confirmation, other reloads are refused: the
// rollback target of the pending one must stay what runs before it.

// OutcomeProvisional is a committed reload that awaits confirmation.
const OutcomeProvisional = "provisional"

// Confirmation results (Confirmation.Result).
const (
	ConfirmConfirmed      = "confirmed"
	ConfirmRolledBack     = "rolled_back"
	ConfirmRollbackFailed = "rollback_failed"
)

// ErrNothingPending: no reload awaits confirmation (or not that one).
var ErrNothingPending = errors.New("no reload awaits confirmation")

// Pending is a reload committed provisionally: <state>/pending.json.
type Pending struct {
	ID        string    `json:"id"`
	Deadline  time.Time `json:"deadline"`
	Committed time.Time `json:"committed"`
	Who       string    `json:"who"`
	// Servers are the backends' servers at commit: a backend that had a
	// server UP then and has none during the window is a degradation.
	Servers []ServerHealth `json:"servers,omitempty"`
	// Watcher is the transient unit that watches the window.
	Watcher string `json:"watcher,omitempty"`
}

// Confirmation is how a provisional reload ended (Entry.Confirmation).
type Confirmation struct {
	Deadline time.Time `json:"deadline"`
	// Result is confirmed, rolled_back or rollback_failed; "" while the
	// window is open.
	Result string     `json:"result,omitempty"`
	By     string     `json:"by,omitempty"`
	At     *time.Time `json:"at,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

// confirmWatcher starts the watcher of a provisional reload, outside the
// caller's session, and names it. Optional: without it --confirm-within
// is refused.
type confirmWatcher interface {
	StartWatch(ctx context.Context, id string, deadline time.Time) (string, error)
}

func (s store) pendingPath() string { return filepath.Join(s.dir, "pending.json") }

func (s store) pending() (Pending, error) {
	var p Pending
	err := readJSONFile(s.pendingPath(), &p)
	return p, err
}

func (s store) setPending(p Pending) error { return writeJSONFile(s.pendingPath(), p) }

func (s store) clearPending() error {
	if err := os.Remove(s.pendingPath()); err != nil && !isNotExist(err) {
		return fmt.Errorf("pending confirmation: %w", err)
	}
	return syncDir(s.dir)
}

// Pending is the reload that awaits confirmation, if any.
func (r *Reloader) Pending() (*Pending, error) {
	p, err := r.store.pending()
	switch {
	case isNotExist(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &p, nil
}

// checkPending refuses a transaction while another awaits confirmation,
// unless this one resolves it (its rollback); a resolving transaction
// whose reload was confirmed meanwhile is refused.
func (t *txn) checkPending() error {
	p, err := t.store.pending()
	switch {
	case isNotExist(err):
		if t.opt.resolving != "" {
			return fmt.Errorf("%w: reload %s was confirmed or resolved meanwhile", ErrNothingPending, t.opt.resolving)
		}
		return nil
	case err != nil:
		return fmt.Errorf("pending confirmation: %w", err)
	case t.opt.resolving == p.ID:
		return nil
	}
	msg := fmt.Sprintf("reload %s awaits confirmation until %s: confirm it (haguard confirm %s) or reject it (haguard rollback %s) first",
		p.ID, p.Deadline.UTC().Format(time.RFC3339), p.ID, p.ID)
	if !t.now().Before(p.Deadline) {
		msg += fmt.Sprintf("; its deadline passed, so its watcher %s should have rolled it back: is it running?", p.Watcher)
	}
	return errors.New(msg)
}

// watch is the stage that opens the window: it records the reload as
// pending and starts its watcher. A watcher that cannot start fails the
// stage (and so rolls back): the window could not be kept.
func (t *txn) watch(ctx context.Context) error {
	return t.stage(ctx, StageWatch, func() (string, error) {
		if t.deps.Watcher == nil {
			return "", errors.New("--confirm-within needs a watcher (systemd), and this haguard has none")
		}
		p := Pending{ID: t.res.ID, Deadline: t.now().Add(t.opt.ConfirmWithin).UTC(), Committed: t.now().UTC(),
			Who: t.opt.Who, Servers: t.res.Probes.Servers}
		if err := t.store.setPending(p); err != nil {
			return "", err
		}
		t.res.Pending = &p // from here on, finish closes the window unless the reload commits
		name, err := t.deps.Watcher.StartWatch(ctx, p.ID, p.Deadline)
		if err != nil {
			return "", fmt.Errorf("start the confirmation watcher: %w", err)
		}
		p.Watcher = name
		if err := t.store.setPending(p); err != nil {
			return "", err
		}
		return fmt.Sprintf("awaiting confirmation until %s (watcher %s)", p.Deadline.Format(time.RFC3339), name), nil
	})
}

// settlePending runs in finish, under the lock: a transaction that opened
// a window and did not commit closes it; one that resolved a window
// records how on the provisional reload's entry.
func (t *txn) settlePending(outcome string, err error) {
	switch {
	case t.opt.resolving != "":
		if p, perr := t.store.pending(); perr != nil || p.ID != t.opt.resolving {
			return // refused: confirmed meanwhile
		}
		c := Confirmation{Result: ConfirmRolledBack, By: t.opt.Who, Reason: t.opt.Reason}
		if outcome != OutcomeCommitted {
			c.Result = ConfirmRollbackFailed
			c.Reason += fmt.Sprintf(" (rollback %s: %s)", t.res.ID, outcome)
			if err != nil {
				c.Reason += ": " + err.Error()
			}
		}
		t.closeWindow(t.opt.resolving, c)
	case t.res.Pending != nil && outcome != OutcomeProvisional:
		if cerr := t.store.clearPending(); cerr != nil {
			t.log.Error("close the confirmation window", "id", t.res.ID, "err", cerr)
		}
		t.res.Pending = nil
	}
}

// closeWindow removes pending.json and records c on entry id: committed
// unless rolled back. The lock is held.
func (r *Reloader) closeWindow(id string, c Confirmation) {
	now := r.now().UTC()
	c.At = &now
	if e, err := r.store.entry(id); err == nil {
		if e.Confirmation != nil {
			c.Deadline = e.Confirmation.Deadline
		}
		e.Confirmation = &c
		e.Outcome = OutcomeCommitted
		if c.Result == ConfirmRolledBack {
			e.Outcome = OutcomeRolledBack
		}
		if err := r.store.putEntry(e); err != nil {
			r.log.Error("record the confirmation", "id", id, "err", err)
		}
	} else {
		r.log.Error("read the provisional reload's entry", "id", id, "err", err)
	}
	if err := r.store.clearPending(); err != nil {
		r.log.Error("close the confirmation window", "id", id, "err", err)
	}
}

// ConfirmIn is Confirm for the state dir alone: confirming needs neither
// systemd nor haproxy, only the lock (waited for up to lockTimeout).
func ConfirmIn(ctx context.Context, stateDir, id, who string, lockTimeout time.Duration, log *slog.Logger) (Entry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{settings: Settings{StateDir: stateDir, LockTimeout: lockTimeout}, deps: Deps{Now: time.Now},
		store: store{dir: stateDir}, log: log}
	return r.Confirm(ctx, id, who)
}

// Confirm makes provisional reload id final (empty id: the one pending).
// who is recorded on its entry and in the audit log.
func (r *Reloader) Confirm(ctx context.Context, id, who string) (Entry, error) {
	lk, err := acquireLock(ctx, r.settings.StateDir, true, r.settings.LockTimeout,
		otherHolder("haguard confirm by "+who, r.now()), nil)
	if err != nil {
		return Entry{}, err
	}
	defer lk.release()
	p, err := r.store.pending()
	switch {
	case isNotExist(err):
		return Entry{}, r.notPending(id)
	case err != nil:
		return Entry{}, fmt.Errorf("pending confirmation: %w", err)
	case id != "" && id != p.ID:
		return Entry{}, fmt.Errorf("%w: reload %s does, not %s", ErrNothingPending, p.ID, id)
	}
	r.closeWindow(p.ID, Confirmation{Result: ConfirmConfirmed, By: who})
	e, err := r.store.entry(p.ID)
	if err != nil {
		return Entry{}, err
	}
	rec := AuditRecord{Time: r.now().UTC(), Who: who, Reason: "confirm " + p.ID, Target: e.Target,
		Outcome: ConfirmConfirmed, BeforeSHA256: e.BeforeSHA256, AfterSHA256: e.AfterSHA256,
		Result: Result{ID: p.ID, OK: true, Stages: []Stage{}, Findings: []Finding{}, Processes: []Process{}, Probes: ProbeReport{Attempts: []ProbeAttempt{}}}}
	if err := r.store.audit(rec); err != nil {
		r.log.Error("audit log", "id", p.ID, "err", err)
	}
	r.log.Info("reload confirmed", "id", p.ID, "who", who)
	return e, nil
}

// notPending says what became of id (empty: the last provisional one)
// when nothing awaits confirmation.
func (r *Reloader) notPending(id string) error {
	es, _ := r.store.entries()
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if c := e.Confirmation; c != nil && (id == "" || e.ID == id) && c.Result != "" {
			at := ""
			if c.At != nil {
				at = " at " + c.At.Format(time.RFC3339)
			}
			why := ""
			if c.Reason != "" {
				why = ": " + c.Reason
			}
			return fmt.Errorf("%w: reload %s was %s%s%s", ErrNothingPending, e.ID, strings.ReplaceAll(c.Result, "_", " "), at, why)
		}
	}
	return ErrNothingPending
}
