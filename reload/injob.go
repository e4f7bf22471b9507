package reload

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A plain `systemctl reload` can go through haguard: a drop-in makes the
// unit's ExecReload run `haguard exec-reload`, which runs a transaction
// inside the unit's reload job (Options.InReloadJob). But haguard's own
// transactions reload the unit over D-Bus too, and that job runs the same
// ExecReload: it must not check, verify or take the lock again, since the
// transaction that asked for the job holds the lock and does all that
// itself. DriverOf tells the two apart.

// Driver is the haguard transaction whose reload the unit's job is.
type Driver struct {
	ID    string
	PID   int
	Stage string
	// Holder is what the lock file says: pid, who, reason, since when.
	Holder string
}

// BusyError says that a transaction holds the lock at a stage that does
// not reload: a reload now would go under it (or wait for it while it
// waits for this job). Holder and Stage say who and where.
type BusyError struct {
	Holder, Stage string
}

func (e *BusyError) Error() string {
	where := "before its snapshot"
	if e.Stage != "" {
		where = "at stage " + e.Stage
	}
	return fmt.Sprintf("haguard transaction %s holds the lock %s: a reload now would go under it; try again once it has finished (haguard status)",
		e.Holder, where)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *BusyError) Is(target error) bool { return target == ErrLocked }

// DriverOf says, from inside the unit's reload job, whose reload it is:
//
//   - a Driver and true: a transaction holds stateDir's lock and its
//     journal is at stage reload or rollback (the stages that ask systemd
//     for a reload): the job is that transaction's, which checks and
//     verifies it;
//   - false and no error: no transaction runs; the job is someone's plain
//     `systemctl reload`;
//   - a *BusyError: a transaction runs, at another stage.
//
// It waits for nothing: the lock is tried once.
func DriverOf(ctx context.Context, stateDir string) (Driver, bool, error) {
	lk, err := acquireLock(ctx, stateDir, false, 0, otherHolder("haguard exec-reload, looking for a transaction", time.Now()), nil)
	if err == nil {
		lk.release()
		return Driver{}, false, nil
	}
	var le *LockedError
	if !errors.As(err, &le) {
		return Driver{}, false, err
	}
	j, jerr := store{dir: stateDir}.journal()
	if jerr != nil {
		// No journal yet: the holder is at its check (or is a recovery
		// that has not begun to restore).
		return Driver{}, false, &BusyError{Holder: le.Holder}
	}
	switch j.Stage {
	case StageReload, StageRollback:
		return Driver{ID: j.ID, PID: j.PID, Stage: j.Stage, Holder: le.Holder}, true, nil
	}
	return Driver{}, false, &BusyError{Holder: le.Holder, Stage: j.Stage}
}
