package reload

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrLocked says another reload holds the lock (reload.lock: fail, or the
// wait timed out). The API maps it to 409.
var ErrLocked = errors.New("another reload is running")

// LockedError carries who holds the lock, as its holder wrote it.
type LockedError struct {
	Holder string
}

func (e *LockedError) Error() string {
	if e.Holder == "" {
		return ErrLocked.Error()
	}
	return fmt.Sprintf("%v (held by %s)", ErrLocked, e.Holder)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// lockFile is an exclusive flock on the state dir itself and on
// <state>/lock. The kernel drops both when the holder dies, so a SIGKILLed
// run never wedges the next one; the journal, not the lock, says that a
// run died. The directory lock is the one that cannot be stolen: the lock
// file can be deleted (it names a holder that may be long dead, which
// invites it), and a new file is a new lock, but a state dir with a
// history in it cannot be. The file lock stays for the holder's name and
// for older haguard versions, which lock only the file.
type lockFile struct {
	d, f *os.File
}

const lockPoll = 50 * time.Millisecond

// holderOf is what a run writes into the lock file, for whoever waits:
// "pid 4242 (haguard reload by alice, reason "bump", since 2026-...Z)".
func holderOf(opt Options, pid int, start time.Time) string {
	s := fmt.Sprintf("pid %d (haguard reload by %s", pid, cmp.Or(opt.Who, "an unknown user"))
	if opt.Reason != "" {
		s += fmt.Sprintf(", reason %q", opt.Reason)
	}
	return s + ", since " + start.UTC().Format(time.RFC3339) + ")"
}

// otherHolder is holderOf for what is not a reload transaction:
// "pid 4242 (haguard confirm by bob, since 2026-...Z)".
func otherHolder(what string, start time.Time) string {
	return fmt.Sprintf("pid %d (%s, since %s)", os.Getpid(), what, start.UTC().Format(time.RFC3339))
}

// parseHolder reads the pid and the start back from a holder string (this
// version's, or an older "pid N since T"); zero values when absent.
func parseHolder(h string) (pid int, since time.Time) {
	if _, err := fmt.Sscanf(h, "pid %d", &pid); err != nil {
		return 0, time.Time{}
	}
	if i := strings.LastIndex(h, "since "); i >= 0 {
		ts := strings.TrimRight(strings.Fields(h[i+len("since "):] + " ")[0], ")")
		since, _ = time.Parse(time.RFC3339, ts)
	}
	return pid, since
}

// acquireLock takes the lock. With wait it retries until timeout or ctx
// ends, telling waiting (when set) who holds it, once and again whenever
// the holder changes; without, it fails at once.
func acquireLock(ctx context.Context, dir string, wait bool, timeout time.Duration, holder string, waiting func(holder string)) (*lockFile, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open state dir: %w", err)
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("open lock: %w", err)
	}
	closeAll := func() {
		f.Close()
		d.Close()
	}
	deadline := time.Now().Add(timeout)
	told := "\x00" // no holder told yet
	for {
		err := tryLock(d, f)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			closeAll()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		if !wait || !time.Now().Before(deadline) {
			h := readHolder(path)
			closeAll()
			return nil, &LockedError{Holder: h}
		}
		if h := readHolder(path); waiting != nil && (told == "\x00" || h != "" && h != told) {
			told = h
			waiting(cmp.Or(h, "another haguard run (its name is not written yet)"))
		}
		select {
		case <-ctx.Done():
			closeAll()
			return nil, fmt.Errorf("wait for lock: %w", ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(holder+"\n"), 0)
	}
	return &lockFile{d: d, f: f}, nil
}

// tryLock takes both locks or neither, without blocking.
func tryLock(d, f *os.File) error {
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
		return err
	}
	return nil
}

func readHolder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// release drops the lock. The file stays: removing it would race with a
// waiter that already opened it.
func (l *lockFile) release() {
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
	_ = syscall.Flock(int(l.d.Fd()), syscall.LOCK_UN)
	_ = l.d.Close()
}

// Progress is a transaction that holds the lock now.
type Progress struct {
	// Holder is what the holder wrote: "pid N since T".
	Holder string `json:"holder"`
	PID    int    `json:"pid"`
	// Stage is the stage its journal names ("" before the snapshot).
	Stage string    `json:"stage"`
	Since time.Time `json:"since"`
}

// inProgress reports the transaction that holds dir's lock, nil when the
// lock is free (tried without blocking, released at once).
func inProgress(dir string) *Progress {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
		return nil
	}
	p := &Progress{Holder: readHolder(filepath.Join(dir, "lock"))}
	p.PID, p.Since = parseHolder(p.Holder)
	return p
}
