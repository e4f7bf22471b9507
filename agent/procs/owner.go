package procs

import "strings"

// owner is what a process's cgroup path says about who started it.
type owner struct {
	// unit is the deepest systemd unit in the path that can hold
	// processes: "haproxy@second.service", "session-3.scope",
	// "docker-1f2e….scope"; "" when the path names none ("/", "/..").
	unit string
	// container names the container the path puts it in ("docker-1f2e….scope",
	// "docker/1f2e…", "cri-containerd-….scope", "machine-web.scope",
	// "lxc.payload.web"), "" when none.
	container string
}

// name is the container, else the unit.
func (o owner) name() string {
	if o.container != "" {
		return o.container
	}
	return o.unit
}

// service reports whether the unit is a service: started and kept
// running by systemd, which would start a killed process again.
func (o owner) service() bool { return strings.HasSuffix(o.unit, ".service") }

// ownerOf reads a cgroup path such as
// "/system.slice/haproxy@second.service",
// "/user.slice/user-0.slice/session-3.scope",
// "/system.slice/docker-1f2e….scope" (docker with the systemd driver),
// "/docker/1f2e…" (the cgroupfs driver),
// "/machine.slice/libpod-1f2e….scope" (podman),
// "/kubepods.slice/kubepods-burstable.slice/…/cri-containerd-1f2e….scope",
// "/machine.slice/machine-web.scope" (systemd-nspawn, VMs) or
// "/lxc.payload.web/…".
func ownerOf(cgroup string) owner {
	var o owner
	var scope bool // o.container is a scope: the container itself
	parts := strings.Split(strings.Trim(cgroup, "/"), "/")
	for i, c := range parts {
		if strings.HasSuffix(c, ".service") || strings.HasSuffix(c, ".scope") {
			o.unit = c
		}
		next := ""
		if i+1 < len(parts) {
			next = parts[i+1]
		}
		// The first marker, unless a deeper one is the container's own
		// scope (kubepods.slice/…/cri-containerd-….scope).
		if name, ok := containerIn(c, next); ok && (o.container == "" || !scope && strings.HasSuffix(name, ".scope")) {
			o.container, scope = name, strings.HasSuffix(name, ".scope")
		}
	}
	return o
}

// containerIn reports whether the path component c (followed by next)
// marks a container, and the name to report for it: the component, or
// for a bare runtime directory ("docker", "lxc") the one below it.
func containerIn(c, next string) (string, bool) {
	switch {
	case c == "docker" || c == "lxc" || c == "libpod_parent":
		if next != "" {
			return c + "/" + next, true
		}
		return c, true
	case c == "machine.slice",
		strings.HasPrefix(c, "kubepods"),
		strings.HasPrefix(c, "lxc.payload."),
		strings.HasPrefix(c, "lxc.monitor."):
		return c, true
	}
	for _, prefix := range []string{"docker-", "libpod-", "crio-", "cri-containerd-", "machine-"} {
		if strings.HasPrefix(c, prefix) && strings.HasSuffix(c, ".scope") {
			return c, true
		}
	}
	return "", false
}
