package procs

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/netns"
	"github.com/haguard/haguard/systemd"
)

// Input is everything classification looks at.
type Input struct {
	// Unit is the managed unit as systemd reports it. Name is always set;
	// MainPID and ControlGroup are zero when systemd could not be asked.
	Unit systemd.Unit
	// ShowProc is the master's `show proc`, nil when the master CLI could
	// not be asked (generations then come from start order).
	ShowProc *master.ShowProc
	// Procs is the process table (ListProcesses).
	Procs []Proc
	// Settle is how long an old-generation worker may keep LISTENing
	// after the newest worker started before it counts as divergent.
	Settle time.Duration
	// Now is the time of the sweep.
	Now time.Time
	// Netns is haguard's own network namespace: the reference for
	// "another namespace" when no managed process's is known.
	Netns netns.ID
}

// Classify assigns every process its class, reason and generation. It is
// a pure function of in (docs/ghosts.md has the rules).
func Classify(in Input) Report {
	if foreignShowProc(in) {
		// The master CLI answered for another haproxy (a hand-started
		// one that bound the same socket path): its generations say
		// nothing about the unit's workers, which then look old.
		in.ShowProc = nil
	}
	c := newClassifier(in)
	r := Report{Unit: in.Unit.Name, MasterPID: c.master, Processes: []Process{}}
	unanchored := c.unanchored()
	procs := slices.Clone(in.Procs)
	sort.Slice(procs, func(i, j int) bool { return procs[i].PID < procs[j].PID })
	for _, p := range procs {
		class, reason, gen := c.classify(p)
		if p.ListenErr != "" {
			reason += "; its listening sockets are not all known (" + p.ListenErr + ")"
		}
		listen := p.Listen
		if listen == nil {
			listen = []string{}
		}
		started := ""
		if !p.Created.IsZero() {
			started = p.Created.UTC().Format(time.RFC3339)
		}
		r.Processes = append(r.Processes, Process{
			PID: p.PID, PPID: p.PPID, Class: class, Reason: reason,
			Cgroup: p.Cgroup(), Exe: p.Exe, Cmdline: strings.Join(p.Cmdline, " "),
			Started: started, Created: p.Created, Listen: listen, Generation: gen,
			Unit: ownerOf(p.Cgroup()).name(), Netns: uint64(p.Netns), StartTicks: p.StartTicks,
			NoKill: cmp.Or(unanchored, c.serving(p)),
		})
		r.Counts.add(class)
	}
	switch {
	case c.master != 0 && in.ShowProc == nil:
		r.Unsettled = "the master CLI did not answer `show proc` (no -S, or re-executing for a reload): generations come from start order"
	case c.reloading != "":
		r.Unsettled = c.reloading
	case in.ShowProc != nil:
		if w, ok := in.ShowProc.ReloadInProgress(); ok {
			r.Unsettled = fmt.Sprintf("the reload to generation %d is in progress (worker %d is of generation %d)", in.ShowProc.Reloads, w.PID, w.Generation)
		}
	}
	return r
}

// foreignShowProc reports whether in's `show proc` comes from another
// master than the unit's: not systemd's MainPID, or, without a MainPID,
// not an haproxy in the unit's cgroup.
func foreignShowProc(in Input) bool {
	sp := in.ShowProc
	switch {
	case sp == nil:
		return false
	case in.Unit.MainPID != 0:
		return sp.Master.PID != in.Unit.MainPID
	case in.Unit.ControlGroup != "":
		for _, p := range in.Procs {
			if p.PID == sp.Master.PID {
				return !p.inCgroup(in.Unit.ControlGroup)
			}
		}
		return true
	}
	return false
}

type classifier struct {
	in     Input
	master int32 // the managed master: MainPID, else show proc's
	byPID  map[int32]Proc
	// managedListen are the addresses the managed processes listen on,
	// with the network namespaces they listen in.
	managedListen map[string][]netns.ID
	// netns is the managed haproxy's network namespace (0 if unknown).
	netns netns.ID
	// newest is the start of the newest current-generation worker, the
	// reference for the settle time (zero if unknown).
	newest time.Time
	// order ranks the master's children by start, for generations when
	// show proc is unavailable.
	order map[int32]int
	// reloading is set when a worker was forked after `show proc`.
	reloading string
}

func newClassifier(in Input) *classifier {
	c := &classifier{in: in, master: in.Unit.MainPID, byPID: map[int32]Proc{}, managedListen: map[string][]netns.ID{}, order: map[int32]int{}}
	if c.master == 0 && in.ShowProc != nil {
		c.master = in.ShowProc.Master.PID
	}
	for _, p := range in.Procs {
		c.byPID[p.PID] = p
	}
	var children []Proc
	for _, p := range in.Procs {
		if c.managed(p) {
			for _, a := range p.Listen {
				c.managedListen[a] = append(c.managedListen[a], p.Netns)
			}
		}
		if c.master != 0 && p.PPID == c.master {
			children = append(children, p)
		}
	}
	sort.Slice(children, func(i, j int) bool { return children[i].StartTicks < children[j].StartTicks })
	for i, p := range children {
		c.order[p.PID] = i
	}
	if sp := in.ShowProc; sp != nil {
		for _, w := range sp.Workers {
			if p, ok := c.byPID[w.PID]; ok && w.Generation == sp.Reloads && p.Created.After(c.newest) {
				c.newest = p.Created
			}
		}
	} else if n := len(children); n > 0 {
		c.newest = children[n-1].Created
	}
	c.netns = c.managedNetns()
	return c
}

func (c *classifier) inUnit(p Proc) bool { return p.inCgroup(c.in.Unit.ControlGroup) }

// descends reports whether p is the managed master or below it.
func (c *classifier) descends(p Proc) bool {
	if c.master == 0 {
		return false
	}
	if p.PID == c.master || p.PPID == c.master {
		return true
	}
	if p.Ancestors != nil {
		return slices.Contains(p.Ancestors, c.master)
	}
	cur := p.PPID
	for range maxDepth {
		q, ok := c.byPID[cur]
		if !ok {
			return false
		}
		if q.PPID == c.master {
			return true
		}
		cur = q.PPID
	}
	return false
}

func (c *classifier) managed(p Proc) bool { return c.inUnit(p) || c.descends(p) }

func (c *classifier) classify(p Proc) (Class, string, int) {
	unit := c.in.Unit.Name
	if !c.managed(p) {
		class, reason := c.unmanaged(p)
		return class, reason, 0
	}
	gen := c.generation(p)
	if p.ExeDeleted() {
		return Divergent, fmt.Sprintf("in %s, but its executable %s was deleted or replaced after it started: the binary on disk is not what runs (upgraded without a restart)",
			unit, strings.TrimSuffix(p.Exe, " (deleted)")), gen
	}
	if p.PID == c.master {
		return Current, fmt.Sprintf("master of %s (MainPID)%s", unit, c.atReload()), gen
	}
	if !c.descends(p) {
		return c.orphan(p)
	}
	return c.worker(p, gen)
}

// unanchored says why no process of this sweep may be killed, "" when
// the anchor is sound: the unit's cgroup must be known (without it a ghost
// is only "not below the master the master CLI names", and the unit's
// orphans, or everything when that socket was taken over by a hand-started
// haproxy, look like ghosts), and systemd's MainPID, when it has one, must
// be an haproxy in that cgroup as seen from here (else PIDs or cgroups
// are from another namespace and nothing compares).
func (c *classifier) unanchored() string {
	u := c.in.Unit
	if u.ControlGroup == "" {
		return fmt.Sprintf("not signalled: %s's cgroup is unknown (systemd did not answer, or the unit has no processes), so the unit's own processes cannot be told from ghosts", u.Name)
	}
	if u.MainPID == 0 {
		return ""
	}
	if p, ok := c.byPID[u.MainPID]; !ok || !p.inCgroup(u.ControlGroup) {
		return fmt.Sprintf("not signalled: %s's MainPID %d is not an haproxy in %s as seen from here (another PID or cgroup namespace?)", u.Name, u.MainPID, u.ControlGroup)
	}
	return ""
}

// serving says why p must not be killed because the service runs on it,
// "" when it does not: the managed master, a worker of the newest
// generation (or forked after show proc was read), and an old worker that
// a failed reload left as the only one listening. Their class may be
// divergent (a deleted executable, a failed reload), but they need a
// reload or a restart, not a signal.
func (c *classifier) serving(p Proc) string {
	const why = "not signalled: the service runs on it (%s); it needs a reload or a restart, not a kill"
	if p.PID == c.master && c.master != 0 {
		return fmt.Sprintf(why, "the managed master")
	}
	if c.master == 0 && c.inUnit(p) {
		return fmt.Sprintf(why, "no master is known, so the unit's serving processes cannot be told from stale ones")
	}
	if !c.descends(p) {
		return ""
	}
	sp := c.in.ShowProc
	if sp == nil {
		if c.order[p.PID] == len(c.order)-1 {
			return fmt.Sprintf(why, "the newest worker")
		}
		return ""
	}
	row, listed := sp.Find(p.PID)
	switch {
	case listed && !row.Old:
		return fmt.Sprintf(why, "a worker of the master's current set")
	case listed && len(p.Listen) > 0 && sp.LastReloadFailed() && !c.hasCurrentWorker():
		return fmt.Sprintf(why, "the last reload failed and it is the worker left listening")
	case !listed && !c.newest.IsZero() && p.Created.After(c.newest):
		return fmt.Sprintf(why, "a worker forked after show proc was read")
	}
	return ""
}

func (c *classifier) atReload() string {
	if sp := c.in.ShowProc; sp != nil {
		return fmt.Sprintf(", at reload %d", sp.Reloads)
	}
	return ""
}

// generation is the master's reload count when p was forked (show proc),
// else p's rank among the master's children by start time.
func (c *classifier) generation(p Proc) int {
	if sp := c.in.ShowProc; sp != nil {
		if row, ok := sp.Find(p.PID); ok {
			return row.Generation
		}
		if p.PID == c.master {
			return sp.Reloads
		}
		if !c.newest.IsZero() && p.Created.After(c.newest) {
			return sp.Reloads // forked after show proc was read
		}
		return 0
	}
	if p.PID == c.master {
		return len(c.order)
	}
	return c.order[p.PID]
}

// worker classifies a descendant of the managed master.
func (c *classifier) worker(p Proc, gen int) (Class, string, int) {
	sp := c.in.ShowProc
	listen := strings.Join(p.Listen, ", ")
	if sp == nil {
		// No master CLI: the newest child is current, older ones old.
		if c.order[p.PID] == len(c.order)-1 {
			return Current, fmt.Sprintf("newest worker of master %d (by start time; master CLI unavailable)", c.master), gen
		}
		return c.old(p, gen, "an older worker of master %d (by start time; master CLI unavailable)", c.master)
	}
	row, listed := sp.Find(p.PID)
	switch {
	case listed && !row.Old && row.Type == "worker":
		if row.Generation == sp.Reloads {
			return Current, fmt.Sprintf("worker of the newest generation %d of master %d", gen, c.master), gen
		}
		if sp.LastReloadFailed() {
			return Divergent, fmt.Sprintf("the last reload failed (failed: %d): this worker of generation %d still serves the config from before it while master %d is at reload %d",
				sp.FailedReloads, gen, c.master, sp.Reloads), gen
		}
		return Current, fmt.Sprintf("newest worker (generation %d) of master %d; the reload to %d is in progress", gen, c.master, sp.Reloads), gen
	case listed && row.Old:
		if len(p.Listen) > 0 && sp.LastReloadFailed() && !c.hasCurrentWorker() {
			return Divergent, fmt.Sprintf("the last reload failed (failed: %d) and no new worker runs: this old worker of generation %d still LISTENs on %s with the config from before it",
				sp.FailedReloads, gen, listen), gen
		}
		return c.old(p, gen, "an old worker of generation %d (master %d at reload %d)", gen, c.master, sp.Reloads)
	case listed:
		return Current, fmt.Sprintf("program %q of master %d", row.Type, c.master), gen
	case !c.newest.IsZero() && p.Created.After(c.newest):
		c.reloading = fmt.Sprintf("worker %d of master %d started after `show proc` was read (a reload in progress)", p.PID, c.master)
		return Current, fmt.Sprintf("worker of master %d started after `show proc` was read (a reload in progress)", c.master), gen
	default:
		return c.old(p, gen, "a child of master %d that `show proc` does not list", c.master)
	}
}

func (c *classifier) hasCurrentWorker() bool {
	for _, w := range c.in.ShowProc.Workers {
		if _, ok := c.byPID[w.PID]; ok {
			return true
		}
	}
	return false
}

// old classifies an old-generation worker: draining unless it still
// LISTENs after the settle time.
func (c *classifier) old(p Proc, gen int, what string, args ...any) (Class, string, int) {
	desc := fmt.Sprintf(what, args...)
	if len(p.Listen) == 0 {
		return Draining, desc + "; no LISTEN socket: finishing its connections", gen
	}
	listen := strings.Join(p.Listen, ", ")
	if c.newest.IsZero() {
		return Divergent, fmt.Sprintf("%s; still LISTENs on %s and no current worker is known", desc, listen), gen
	}
	since := c.in.Now.Sub(c.newest).Truncate(time.Millisecond)
	if since <= c.in.Settle {
		return Draining, fmt.Sprintf("%s; still LISTENs on %s but the newest worker started only %s ago (settle %s): releasing its listeners",
			desc, listen, since, c.in.Settle), gen
	}
	return Divergent, fmt.Sprintf("%s; still LISTENs on %s %s after the newest worker started (settle %s): it keeps taking new connections with an old config",
		desc, listen, since, c.in.Settle), gen
}

// orphan classifies a process in the unit's cgroup that is not below the
// managed master.
func (c *classifier) orphan(p Proc) (Class, string, int) {
	unit := c.in.Unit.Name
	if p.PID == c.in.Unit.ControlPID {
		return Current, fmt.Sprintf("control process of %s (ExecReload/ExecStartPre); exits on its own", unit), 0
	}
	not := "has no master process"
	if c.master != 0 {
		not = fmt.Sprintf("is not a descendant of master %d", c.master)
	}
	if len(p.Listen) > 0 {
		return Divergent, fmt.Sprintf("in %s's cgroup but %s (an orphan of an earlier master?); still LISTENs on %s",
			unit, not, strings.Join(p.Listen, ", ")), 0
	}
	return Draining, fmt.Sprintf("in %s's cgroup but %s; no LISTEN socket: finishing its connections (systemd stops it with the unit)", unit, not), 0
}
