// Package procs finds every haproxy process on the host and classifies it
// against the systemd unit that should own it: current, draining, ghost or
// divergent, each with the reason why (docs/ghosts.md). It can also kill
// ghosts, guarded against PID reuse.
//
// The master CLI cannot see an haproxy started by hand (it is not the
// master's child), and haproxy's exporter sees only the current worker;
// only a scan of processes and listening sockets, tied to the unit's
// cgroup and the master's process tree, finds ghosts.
package procs

import (
	"strings"
	"time"
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
)

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
	// Listen holds the TCP addresses it LISTENs on ("127.0.0.1:3307",
	// "[::]:80"), sorted.
	Listen []string
	// ListenErr says why the sockets could not be read (then Listen is
	// empty but may not be true): /proc/PID/fd needs CAP_SYS_PTRACE for
	// another user's process.
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
}

// Report is one sweep: the JSON document `haguard ghosts --format json`
// prints.
type Report struct {
	Unit      string    `json:"unit"`
	MasterPID int32     `json:"master_pid"`
	Processes []Process `json:"processes"`
	Counts    Counts    `json:"counts"`
}

// Victims is the kill policy of both `haguard ghosts --kill` and the
// reload's --kill-ghosts: every ghost (one that Kill must refuse, when the
// sweep had no sound anchor, is kept in so that its kill fails loudly),
// and, with divergent, the divergent processes the service does not run
// on (an old worker still listening). A divergent master or current
// worker needs a reload or a restart, never a signal (NoKill).
func (r Report) Victims(divergent bool) []Process {
	var out []Process
	for _, p := range r.Processes {
		if p.Class == Ghost || (divergent && p.Class == Divergent && p.NoKill == "") {
			out = append(out, p)
		}
	}
	return out
}

// Clean reports whether the sweep found no ghost and nothing divergent.
func (r Report) Clean() bool { return r.Counts.Ghost == 0 && r.Counts.Divergent == 0 }

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
	}
}
