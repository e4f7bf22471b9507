package procs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/haguard/haguard/agent/netns"
)

// The processes that are not the managed unit's: ghosts, other units',
// other namespaces' and containers' (docs/ghosts.md, "Not managed").

// managedNetns is the managed haproxy's network namespace: the master's,
// else any managed process's, else haguard's own (Input.Netns).
func (c *classifier) managedNetns() netns.ID {
	if p, ok := c.byPID[c.master]; ok && c.master != 0 && p.Netns != 0 {
		return p.Netns
	}
	for _, p := range c.in.Procs {
		if p.Netns != 0 && c.managed(p) {
			return p.Netns
		}
	}
	return c.in.Netns
}

// elsewhere reports whether p is known to be in another network
// namespace than the managed haproxy. An unknown namespace is not
// elsewhere: it may share traffic, which is the verdict to err on.
func (c *classifier) elsewhere(p Proc) bool {
	return p.Netns != 0 && c.netns != 0 && p.Netns != c.netns
}

// shared lists the addresses p listens on that a managed process listens
// on in the same network namespace: there the kernel (SO_REUSEPORT)
// splits new connections between them. The same address in another
// namespace is another socket on another stack and takes none of them.
func (c *classifier) shared(p Proc) []string {
	var out []string
	for _, a := range p.Listen {
		if slices.ContainsFunc(c.managedListen[a], func(ns netns.ID) bool { return ns == 0 || p.Netns == 0 || ns == p.Netns }) {
			out = append(out, a)
		}
	}
	return out
}

// unmanaged classifies a process that is neither in the unit nor below
// its master. In order: another network namespace is foreign (it cannot
// take our connections); a container's cgroup is foreign, or a conflict
// when it listens where we do; another service's cgroup is other-unit,
// or a conflict when it listens where we do; anything else (started by
// hand, in a login session, orphaned) is a ghost.
func (c *classifier) unmanaged(p Proc) (Class, string) {
	u := c.in.Unit.Name
	o := ownerOf(p.Cgroup())
	shared := c.shared(p)
	switch {
	case c.elsewhere(p):
		var in string
		switch {
		case o.container != "":
			in = ", in container " + o.container
		case o.service():
			in = ", of unit " + o.unit
		}
		return Foreign, fmt.Sprintf("in another network namespace (%s%s; %s runs in %s): it cannot take %s's connections, whatever it listens on; %s; never signalled (not %s's)",
			p.Netns, in, u, c.netns, u, listening(p.Listen), u)
	case o.container != "" && len(shared) > 0:
		return Conflict, fmt.Sprintf("in container %s (cgroup %s) and LISTENs on %s, which %s also listens on in the same network namespace (%s): the kernel splits new connections between them, each with its own config; never signalled (the container runtime would start it again): stop container %s, or move one of them to another address",
			o.container, p.Cgroup(), strings.Join(shared, ", "), u, c.netns, o.container)
	case o.container != "":
		return Foreign, fmt.Sprintf("in container %s (cgroup %s), in %s's network namespace (%s); %s, where %s does not: it takes none of its connections; never signalled (the container runtime owns it)",
			o.container, p.Cgroup(), u, c.netns, listening(p.Listen), u)
	case o.service() && !c.ours(o.unit):
		if len(shared) > 0 {
			return Conflict, fmt.Sprintf("belongs to %s (cgroup %s) and LISTENs on %s, which %s also listens on in the same network namespace (%s): the kernel splits new connections between the two units, each with its own config; never signalled (systemd would start it again): stop %s (systemctl stop %s), or move one of them to another address",
				o.unit, p.Cgroup(), strings.Join(shared, ", "), u, c.netns, o.unit, o.unit)
		}
		return OtherUnit, fmt.Sprintf("belongs to %s (cgroup %s), another unit than %s; %s, where %s does not: it takes none of its connections; never signalled (systemd would start it again)",
			o.unit, p.Cgroup(), u, listening(p.Listen), u)
	}
	return Ghost, c.ghostReason(p, shared)
}

// ours reports whether unit may be the managed unit itself: only when
// the unit's cgroup is unknown (then its own orphans cannot be told by
// cgroup, and stay ghosts, which Kill refuses without an anchor).
func (c *classifier) ours(unit string) bool {
	return c.in.Unit.ControlGroup == "" && unit == c.in.Unit.Name
}

// listening says what p listens on, for a reason.
func listening(addrs []string) string {
	if len(addrs) == 0 {
		return "no listening socket"
	}
	return "LISTENs on " + strings.Join(addrs, ", ")
}

func (c *classifier) ghostReason(p Proc, shared []string) string {
	u := c.in.Unit
	var b strings.Builder
	switch {
	case u.ControlGroup == "":
		fmt.Fprintf(&b, "%s's cgroup is unknown", u.Name)
	default:
		fmt.Fprintf(&b, "not in %s's cgroup %s (its own: %s)", u.Name, u.ControlGroup, orDash(p.Cgroup()))
	}
	if c.master != 0 {
		fmt.Fprintf(&b, " and not a descendant of its master %d", c.master)
	} else {
		fmt.Fprintf(&b, " and %s has no master process", u.Name)
	}
	b.WriteString(": started by hand or orphaned (its cgroup names no other service or container)")
	switch {
	case len(shared) > 0:
		fmt.Fprintf(&b, "; LISTENs on %s, which the managed haproxy also serves in the same network namespace: it takes a share of new connections with its own config", strings.Join(shared, ", "))
	case len(p.Listen) > 0:
		fmt.Fprintf(&b, "; LISTENs on %s", strings.Join(p.Listen, ", "))
	default:
		b.WriteString("; no LISTEN socket")
	}
	if p.ExeDeleted() {
		b.WriteString("; its executable was deleted")
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
