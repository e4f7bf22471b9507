package procs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/netns"
	"github.com/haguard/haguard/internal/async"
	"github.com/haguard/haguard/systemd"
)

// UnitSource reads the managed unit's state (systemd.Client satisfies
// it): the sweep needs its MainPID, ControlPID and ControlGroup.
type UnitSource interface {
	State(ctx context.Context, unit string) (systemd.Unit, error)
}

// MasterSource reads `show proc` (master.Client satisfies it).
type MasterSource interface {
	ShowProc(ctx context.Context) (*master.ShowProc, error)
}

// Scanner sweeps the host: it reads the unit, the master's `show proc`
// and the process table, and classifies. Build it with the fields; the
// zero values of List and Now mean ListProcesses and time.Now.
type Scanner struct {
	Unit string
	// Names select haproxy processes by comm or exe basename.
	Names  []string
	Settle time.Duration
	// Systemd and Master may be nil; a sweep needs at least one of them
	// to know which master is the managed one.
	Systemd UnitSource
	Master  MasterSource
	List    Lister
	Now     func() time.Time
	Logger  *slog.Logger
}

// ErrNoAnchor means neither systemd nor the master CLI could say which
// haproxy is the managed one, so nothing can be classified.
var ErrNoAnchor = errors.New("neither systemd nor the master CLI answered: cannot tell managed haproxy from ghosts")

// Sweep runs one sweep. A failure of one source is logged and the other
// is used; ErrNoAnchor (wrapped with both causes) when both fail.
func (s *Scanner) Sweep(ctx context.Context) (Report, error) {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in := Input{Unit: systemd.Unit{Name: s.Unit}, Settle: s.Settle}
	// The unit, the master and the process table are read at once: three
	// independent reads, and the closer in time, the more they agree.
	unit := async.Go(func() error {
		if s.Systemd == nil {
			return errors.New("no systemd client")
		}
		u, err := s.Systemd.State(ctx, s.Unit)
		if err == nil {
			in.Unit = u
		}
		return err
	})
	mast := async.Go(func() error {
		if s.Master == nil {
			return errors.New("no master CLI client")
		}
		sp, err := showProc(ctx, s.Master)
		if err == nil {
			in.ShowProc = sp
		}
		return err
	})
	list := s.List
	if list == nil {
		list = ListProcesses
	}
	table, err := list(ctx, s.Names)
	unitErr, masterErr := unit.Wait(), mast.Wait()
	if unitErr != nil && s.Systemd != nil {
		log.Warn("systemd unavailable for the sweep; classifying by the master CLI only", "err", unitErr)
	}
	if masterErr != nil && s.Master != nil {
		log.Warn("master CLI unavailable for the sweep; generations come from start order", "err", masterErr)
	}
	if unitErr != nil && masterErr != nil {
		return Report{}, fmt.Errorf("%w: systemd: %w; master cli: %w", ErrNoAnchor, unitErr, masterErr)
	}
	if err != nil {
		return Report{}, fmt.Errorf("sweep: %w", err)
	}
	in.Procs = table
	in.Netns, _ = netns.Own() // 0 if unreadable: then only the managed processes' counts
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	in.Now = now()
	if in.Unit.MainPID != 0 {
		warnNamespace(log, in)
	}
	if foreignShowProc(in) {
		log.Warn("the master CLI answers for another haproxy than the unit's (was its socket taken over?): its show proc is ignored",
			"main_pid", in.Unit.MainPID, "show_proc_master", in.ShowProc.Master.PID, "unit_cgroup", in.Unit.ControlGroup)
	}
	return Classify(in), nil
}

// showProc retries (bounded) while a master re-executes itself during a
// reload (master.Reexecuting: seen in about 1 poll in 10 during reloads
// on 2.6 and on 3.0).
func showProc(ctx context.Context, m MasterSource) (*master.ShowProc, error) {
	var err error
	for range 20 {
		var sp *master.ShowProc
		if sp, err = m.ShowProc(ctx); !master.Reexecuting(err) {
			return sp, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, err
}

// warnNamespace logs when systemd's MainPID is not an haproxy in the
// unit's cgroup here: haguard then runs in another PID namespace than
// systemd (a container), and PIDs do not compare.
func warnNamespace(log *slog.Logger, in Input) {
	for _, p := range in.Procs {
		if p.PID == in.Unit.MainPID {
			if !p.inCgroup(in.Unit.ControlGroup) && in.Unit.ControlGroup != "" {
				log.Warn("MainPID is not in the unit's cgroup as seen from here: is haguard in another PID or cgroup namespace than systemd?",
					"main_pid", p.PID, "cgroup", p.Cgroup(), "unit_cgroup", in.Unit.ControlGroup)
			}
			return
		}
	}
	log.Warn("MainPID is not an haproxy process visible here: is haguard in another PID namespace than systemd?",
		"main_pid", in.Unit.MainPID, "unit", in.Unit.Name)
}
