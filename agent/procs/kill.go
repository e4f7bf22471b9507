package procs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Outcome is what Kill did to one process.
type Outcome string

// Kill outcomes.
const (
	// Terminated: it exited after SIGTERM.
	Terminated Outcome = "terminated"
	// Killed: it needed SIGKILL after the grace.
	Killed Outcome = "killed"
	// Gone: it had already exited before any signal.
	Gone Outcome = "gone"
	// Reused: the PID now names another process (its start time
	// differs); nothing was sent.
	Reused Outcome = "pid-reused"
	// Failed: it could not be signalled, or survived SIGKILL.
	Failed Outcome = "failed"
)

// KillResult is the outcome for one process.
type KillResult struct {
	PID     int32   `json:"pid"`
	Outcome Outcome `json:"outcome"`
	Error   string  `json:"error,omitempty"`
}

// Killer removes ghosts: SIGTERM, then SIGKILL after Grace, and before
// every signal it checks that the PID still names the process that was
// classified (same start time), so a recycled PID is never hit.
type Killer struct {
	Grace  time.Duration
	Logger *slog.Logger

	// poll is how often to look whether a process has exited.
	poll time.Duration
	// hardWait bounds the wait after SIGKILL.
	hardWait time.Duration
	// stat re-reads a PID's start time and zombie state.
	stat func(pid int32) (start uint64, zombie bool, err error)
	// signal sends sig to pid only if its start time is still start.
	signal func(pid int32, start uint64, sig syscall.Signal) error
}

// NewKiller returns a Killer working on the real process table.
func NewKiller(grace time.Duration, logger *slog.Logger) *Killer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Killer{Grace: grace, Logger: logger, poll: 50 * time.Millisecond, hardWait: 5 * time.Second,
		stat: StartTicks, signal: signalGuarded}
}

var (
	errGone   = errors.New("process has exited")
	errReused = errors.New("pid now names another process")
)

// Tally counts the processes that no longer run after kills (whatever
// the way: terminated, killed, already gone, or their pid reused) and the
// kills that failed (a ghost still runs).
func Tally(kills []KillResult) (removed, failed int) {
	for _, k := range kills {
		switch k.Outcome {
		case Failed:
			failed++
		case Terminated, Killed, Gone, Reused:
			removed++
		}
	}
	return removed, failed
}

// KillGhosts kills the report's ghosts, and only those: current,
// draining, divergent, other-unit, foreign and conflict processes are
// never signalled. It returns one result per
// ghost; any Failed outcome means the host still runs a ghost.
func (k *Killer) KillGhosts(ctx context.Context, r Report) []KillResult {
	return k.Kill(ctx, r.Victims(false))
}

// Kill sends SIGTERM to every process in ps, waits up to Grace for them
// to exit, then sends SIGKILL to the survivors. Every signal is guarded
// by the PID's start time.
func (k *Killer) Kill(ctx context.Context, ps []Process) []KillResult {
	res := make([]KillResult, len(ps))
	alive := map[int]bool{}
	for i, p := range ps {
		res[i].PID = p.PID
		if why := refusal(p); why != "" {
			res[i].Outcome, res[i].Error = Failed, why
			k.Logger.Warn("refusing to signal", "pid", p.PID, "class", p.Class, "why", why)
			continue
		}
		if p.StartTicks == 0 {
			res[i].Outcome, res[i].Error = Failed, "no start time recorded: refusing to signal an unverified pid"
			continue
		}
		switch err := k.signal(p.PID, p.StartTicks, syscall.SIGTERM); {
		case err == nil:
			alive[i] = true
			k.Logger.Info("sent SIGTERM to ghost", "pid", p.PID)
		case errors.Is(err, errGone):
			res[i].Outcome = Gone
		case errors.Is(err, errReused):
			res[i].Outcome = Reused
			k.Logger.Warn("ghost pid was reused by another process; not signalled", "pid", p.PID)
		default:
			res[i].Outcome, res[i].Error = Failed, err.Error()
		}
	}
	termed := make(map[int]bool, len(alive))
	for i := range alive {
		termed[i] = true
	}
	k.wait(ctx, ps, alive, k.Grace)
	survivors := map[int]bool{}
	for i := range termed {
		if !alive[i] {
			res[i].Outcome = Terminated
			continue
		}
		if ctx.Err() != nil {
			res[i].Outcome, res[i].Error = Failed, "interrupted before the grace ended: "+ctx.Err().Error()
			continue
		}
		p := ps[i]
		switch err := k.signal(p.PID, p.StartTicks, syscall.SIGKILL); {
		case err == nil:
			survivors[i] = true
			k.Logger.Warn("ghost outlived the grace after SIGTERM; sent SIGKILL", "pid", p.PID, "grace", k.Grace)
		case errors.Is(err, errGone), errors.Is(err, errReused):
			res[i].Outcome = Terminated // it exited right at the deadline
		default:
			res[i].Outcome, res[i].Error = Failed, err.Error()
		}
	}
	k.wait(ctx, ps, survivors, k.hardWait)
	for i := range ps {
		if res[i].Outcome != "" {
			continue
		}
		if survivors[i] {
			res[i].Outcome, res[i].Error = Failed, "still running after SIGKILL"
		} else {
			res[i].Outcome = Killed
		}
	}
	return res
}

// refusal says why p must never be signalled, whoever asks: current and
// draining processes, another unit's, another namespace's or a
// container's haproxy, and whatever Classify marked NoKill.
func refusal(p Process) string {
	switch p.Class {
	case Current, Draining:
		return fmt.Sprintf("not signalled: a %s process is never killed", p.Class)
	case OtherUnit, Conflict:
		return fmt.Sprintf("not signalled: it belongs to %s, which would start it again; stop that unit instead", orDash(p.Unit))
	case Foreign:
		return "not signalled: a foreign process (another network namespace or a container) is never killed"
	case Ghost, Divergent:
		return p.NoKill
	}
	return fmt.Sprintf("not signalled: unknown class %q", p.Class)
}

// wait polls until none of the processes in alive (indexes into ps) runs
// any more, or d or ctx runs out. It deletes the exited ones from alive.
func (k *Killer) wait(ctx context.Context, ps []Process, alive map[int]bool, d time.Duration) {
	deadline := time.Now().Add(d)
	for len(alive) > 0 {
		for i := range alive {
			if !k.running(ps[i]) {
				delete(alive, i)
			}
		}
		if len(alive) == 0 || !time.Now().Before(deadline) {
			return
		}
		t := time.NewTimer(min(k.poll, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// running reports whether p (same PID, same start time) still runs; a
// zombie does not.
func (k *Killer) running(p Process) bool {
	start, zombie, err := k.stat(p.PID)
	return err == nil && start == p.StartTicks && !zombie
}

// signalGuarded opens a pidfd for pid, checks that the process behind it
// started at start, and signals through the pidfd, so the PID cannot be
// recycled between the check and the signal. Without pidfd support
// (Linux < 5.3, or a seccomp filter) it checks and then uses kill(2).
func signalGuarded(pid int32, start uint64, sig syscall.Signal) error {
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errGone
		}
		// ENOSYS: Linux < 5.3; EPERM: a seccomp filter. Fall back to
		// check-then-kill(2).
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("pidfd_open %d: %w", pid, err)
		}
		fd = -1
	}
	if fd >= 0 {
		defer unix.Close(fd)
	}
	got, zombie, err := StartTicks(pid)
	switch {
	case gone(err):
		return errGone
	case err != nil:
		return fmt.Errorf("read start time of %d: %w", pid, err)
	case got != start:
		return errReused
	case zombie:
		return errGone
	}
	if fd >= 0 {
		err = unix.PidfdSendSignal(fd, sig, nil, 0)
	} else {
		err = unix.Kill(int(pid), sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return errGone
	}
	if err != nil {
		return fmt.Errorf("signal %d with %v: %w", pid, sig, err)
	}
	return nil
}

// SignalGuarded sends sig to pid only if its start time is still start
// (the PID names the process that was classified). An exited process or
// a reused PID is an error, and nothing is sent. The escalation of old
// generations (agent/generations) signals through it.
func SignalGuarded(pid int32, start uint64, sig syscall.Signal) error {
	return signalGuarded(pid, start, sig)
}
