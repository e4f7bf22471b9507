package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/systemd"
)

// procGenerations reads the generation from the process table, for an
// haproxy without a master CLI (no -S: the default unit of Fedora, RHEL,
// Rocky, Alma and Amazon Linux): the master is systemd's MainPID, the
// current worker its newest child, the older children are draining. The
// reload counters come from the master's environment (HAPROXY_PROCESSES,
// which haproxy keeps across its re-executions), so a failed load is seen
// as soon as the master counts it; a version that does not keep them
// leaves them unknown (-1), and settle then proves a reload by new
// workers, the unit's state and its status alone.
type procGenerations struct {
	sd   *systemd.Client
	unit string
	now  func() time.Time
}

var errNoMaster = errors.New("no master process (MainPID is 0): is the unit running?")

func (p procGenerations) ShowProc(ctx context.Context) (reload.Generation, error) {
	u, err := p.sd.State(ctx, p.unit)
	if err != nil {
		return reload.Generation{}, err
	}
	if u.MainPID == 0 {
		return reload.Generation{}, fmt.Errorf("%s: %w", p.unit, errNoMaster)
	}
	kids, err := procs.Children(u.MainPID)
	if err != nil {
		return reload.Generation{}, fmt.Errorf("children of master %d: %w", u.MainPID, err)
	}
	g := generationOf(int(u.MainPID), kids, p.now())
	if c, ok, err := master.ReadCounters(int(u.MainPID)); err == nil && ok {
		g.Reloads, g.Failed = c.Reloads, c.Failed
	}
	return g, nil
}

// generationOf is the generation that a master's children make: the
// newest is the current worker, the others are old.
func generationOf(master int, kids []procs.Child, now time.Time) reload.Generation {
	g := reload.Generation{MasterPID: master, Reloads: -1, Failed: -1}
	for i, k := range kids {
		w := reload.Worker{PID: int(k.PID)}
		if !k.Started.IsZero() {
			w.Uptime = now.Sub(k.Started)
		}
		if i == len(kids)-1 {
			g.Workers = append(g.Workers, w)
		} else {
			g.OldWorkers = append(g.OldWorkers, w)
		}
	}
	return g
}
