// Package procs finds every haproxy process on the host and classifies it
// against the systemd unit that should own it: current, draining, ghost,
// divergent, other-unit, foreign or conflict, each with the reason why
// (docs/ghosts.md). It owns the kill policy (Report.Victims: ghosts only,
// and divergent processes the service does not run on) and the kill,
// guarded against PID reuse.
//
// The master CLI cannot see an haproxy started by hand (it is not the
// master's child), and haproxy's exporter sees only the current worker;
// only a scan of processes and listening sockets, tied to the unit's
// cgroup and the master's process tree, finds ghosts.
package procs

import (
	"strings"
	"time"

	"github.com/haguard/haguard/agent/netns"
)

// Class is what a process is to the managed unit.
type Class string

// The classes (docs/ghosts.md).
const (
	// Current: in the unit, the master or a worker of the newest generation.
	Current Class = "current"
	// Draining: an old-generation worker of the managed master with no
	// LISTEN socket, finishing its connections. Never killed.
	Draining Class = "draining"
	// Ghost: neither in the unit's cgroup nor a descendant of its master.
	Ghost Class = "ghost"
	// Divergent: in the unit but of an old generation and still
	// listening after the settle time, serving a config from before a
	// failed reload, or running an executable that was deleted/replaced.
	Divergent Class = "divergent"
	// OtherUnit: in the cgroup of another systemd service (for example
	// haproxy@second.service) and not sharing a listening address with
	// the managed haproxy. Never killed: it is that unit's.
	OtherUnit Class = "other-unit"
	// Foreign: in another network namespace than the managed haproxy, or
	// in a container's cgroup (docker-*.scope, libpod-*, kubepods,
	// machine.slice, lxc), and not sharing a listening address with the
	// managed haproxy. Never killed.
	Foreign Class = "foreign"
	// Conflict: another unit's or a container's haproxy that listens on
	// an address the managed haproxy listens on, in the same network
	// namespace: the kernel splits new connections between the two. Never
	// killed (systemd or the container runtime would start it again): the
	// report names the unit to stop.
	Conflict Class = "conflict"
)

// Classes are every class, in the order reports list them.
var Classes = []Class{Current, Draining, Ghost, Divergent, OtherUnit, Foreign, Conflict}

// Proc is one haproxy process as the lister sees it, before
// classification.
type Proc struct {
	PID  int32
	PPID int32
	// Comm is the kernel's short name (/proc/PID/comm).
	Comm string
	// Exe is the readlink of /proc/PID/exe, " (deleted)" suffix included.
	Exe     string
	Cmdline []string
	Created time.Time
	// StartTicks is field 22 of /proc/PID/stat: with the PID it names
	// the process uniquely (the kill guard compares it).
	StartTicks uint64
	// CgroupUnified is the path of the "0::" line (cgroup v2), and
	// CgroupSystemd that of the "name=systemd" line (v1/hybrid hosts).
	CgroupUnified string
	CgroupSystemd string
	// Netns is its network namespace (0 when it could not be read).
	// Listening addresses are compared within one namespace only.
	Netns netns.ID
	// Listen holds the addresses it listens on, sorted: TCP LISTEN
	// sockets ("127.0.0.1:3307", "[::]:80") and bound UDP sockets, such
	// as QUIC binds ("127.0.0.1:443/udp").
	Listen []string
	// ListenErr says why its sockets are not all known (then Listen may
	// miss some or all): /proc/PID/fd needs CAP_SYS_PTRACE for another
	// user's process; UDP listeners of another network namespace need
	// sock_diag from inside it (agent/sockets).
	ListenErr string
	// Ancestors are the PIDs above PPID up to PID 1, parent's parent
	// first. Nil means: derive from the table's PPID links.
	Ancestors []int32
}

// ExeDeleted reports whether the executable was deleted or replaced after
// the process started (the kernel marks the link " (deleted)").
func (p Proc) ExeDeleted() bool { return strings.HasSuffix(p.Exe, " (deleted)") }

// Cgroup is the path to show: the unified ("0::") one, unless only the
// name=systemd hierarchy (cgroup v1 / hybrid hosts) says more than "/".
func (p Proc) Cgroup() string {
	if (p.CgroupUnified == "" || p.CgroupUnified == "/") && p.CgroupSystemd != "" && p.CgroupSystemd != "/" {
		return p.CgroupSystemd
	}
	if p.CgroupUnified == "" {
		return p.CgroupSystemd
	}
	return p.CgroupUnified
}

// inCgroup reports whether the process sits in cg or below it, on either
// hierarchy.
func (p Proc) inCgroup(cg string) bool {
	if cg == "" {
		return false
	}
	for _, have := range []string{p.CgroupUnified, p.CgroupSystemd} {
		if have == cg || strings.HasPrefix(have, strings.TrimSuffix(cg, "/")+"/") {
			return true
		}
	}
	return false
}

// checkMode reports whether this is `haproxy -c` (a config check, such as
// the unit's ExecReload or haguard's own): it serves nothing and exits on
// its own, so the sweep leaves it out.
func (p Proc) checkMode() bool {
	for _, a := range p.Cmdline[min(1, len(p.Cmdline)):] {
		if a == "-c" {
			return true
		}
	}
	return false
}

// Process is one classified process: the JSON contract of `haguard
// ghosts` (docs/ghosts.md).
type Process struct {
	PID     int32  `json:"pid"`
	PPID    int32  `json:"ppid"`
	Class   Class  `json:"class"`
	Reason  string `json:"reason"`
	Cgroup  string `json:"cgroup"`
	Exe     string `json:"exe"`
	Cmdline string `json:"cmdline"`
	// Started is the start time in RFC 3339 ("" when unknown); Created
	// is the same time, for programs.
	Started    string    `json:"started"`
	Created    time.Time `json:"-"`
	Listen     []string  `json:"listen"`
	Generation int       `json:"generation"`
	// Unit is the systemd unit or container its cgroup names
	// ("haproxy.service", "haproxy@second.service", "session-3.scope",
	// "docker-1f2e….scope"), "" when the cgroup names none. For a
	// conflict it is the unit to stop.
	Unit string `json:"unit"`
	// Netns is the inode of its network namespace (0 when unknown), as
	// in "net:[4026531840]".
	Netns uint64 `json:"netns"`

	// StartTicks identifies the process for Kill's PID-reuse guard.
	StartTicks uint64 `json:"-"`
	// NoKill says why Kill must not signal this process, "" when it may:
	// it serves now (the master, a worker of the newest generation, the
	// worker a failed reload left as the only one), or the sweep lacked
	// the unit's cgroup, without which the unit's own processes cannot be
	// told from ghosts.
	NoKill string `json:"-"`
}

// Counts tallies a report by class.
type Counts struct {
	Current   int `json:"current"`
	Draining  int `json:"draining"`
	Ghost     int `json:"ghost"`
	Divergent int `json:"divergent"`
	OtherUnit int `json:"other_unit"`
	Foreign   int `json:"foreign"`
	Conflict  int `json:"conflict"`
}

// ByClass returns the counts keyed by class name ("other-unit", ...),
// every class present: the labels of haguard_processes{class}.
func (c Counts) ByClass() map[string]int {
	out := make(map[string]int, len(Classes))
	for _, cl := range Classes {
		out[string(cl)] = c.Of(cl)
	}
	return out
}

// Of returns the count of class cl.
func (c Counts) Of(cl Class) int {
	switch cl {
	case Current:
		return c.Current
	case Draining:
		return c.Draining
	case Ghost:
		return c.Ghost
	case Divergent:
		return c.Divergent
	case OtherUnit:
		return c.OtherUnit
	case Foreign:
		return c.Foreign
	case Conflict:
		return c.Conflict
	}
	return 0
}

// Report is one sweep: the JSON document `haguard ghosts --format json`
// prints.
type Report struct {
	Unit      string    `json:"unit"`
	MasterPID int32     `json:"master_pid"`
	Processes []Process `json:"processes"`
	Counts    Counts    `json:"counts"`
	// Unsettled says why the generations of this sweep are not the
	// master's settled word, "" when they are: its `show proc` could
	// not be read (they then come from start order), or a reload was
	// under way. Nothing that acts on a generation (the escalation of
	// old ones) acts on an unsettled sweep.
	Unsettled string `json:"unsettled,omitempty"`
}

// Victims is the kill policy of both `haguard ghosts --kill` and the
// reload's --kill-ghosts: every ghost (one that Kill must refuse, when the
// sweep had no sound anchor, is kept in so that its kill fails loudly),
// and, with divergent, the divergent processes the service does not run
// on (an old worker still listening). A divergent master or current
// worker needs a reload or a restart, never a signal (NoKill). Another
// unit's, another namespace's or a container's haproxy (other-unit,
// foreign, conflict) is never a victim: its owner would start it again.
func (r Report) Victims(divergent bool) []Process {
	var out []Process
	for _, p := range r.Processes {
		if p.Class == Ghost || (divergent && p.Class == Divergent && p.NoKill == "") {
			out = append(out, p)
		}
	}
	return out
}

// Clean reports whether the sweep found no ghost, nothing divergent and
// no conflict. other-unit and foreign processes do not take the managed
// haproxy's traffic: they leave a sweep clean.
func (r Report) Clean() bool {
	return r.Counts.Ghost == 0 && r.Counts.Divergent == 0 && r.Counts.Conflict == 0
}

// Of returns the processes of class c.
func (r Report) Of(c Class) []Process {
	var out []Process
	for _, p := range r.Processes {
		if p.Class == c {
			out = append(out, p)
		}
	}
	return out
}

func (c *Counts) add(class Class) {
	switch class {
	case Current:
		c.Current++
	case Draining:
		c.Draining++
	case Ghost:
		c.Ghost++
	case Divergent:
		c.Divergent++
	case OtherUnit:
		c.OtherUnit++
	case Foreign:
		c.Foreign++
	case Conflict:
		c.Conflict++
	}
}
