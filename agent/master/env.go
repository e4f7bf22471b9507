package master

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Counters are the master's reload counters as its environment carries
// them: haproxy's master keeps the list of its processes in
// HAPROXY_PROCESSES across its re-executions
// ("|type=m;fd=-1;pid=94;reloads=1;failedreloads=1;..."), so they can be
// read from /proc/PID/environ without the master CLI (an haproxy started
// without -S). The environment is that of the master's last exec: it
// moves when the master re-executes for a reload and again when it has
// the outcome.
type Counters struct {
	Reloads, Failed int
	// WaitMode: the master is idle between reloads
	// (HAPROXY_MWORKER_WAIT_ONLY=1), not loading a configuration.
	WaitMode bool
}

// ReadCounters reads pid's counters from /proc/PID/environ. ok is false
// when the environment has no HAPROXY_PROCESSES (not an haproxy master,
// or a version that does not keep it).
func ReadCounters(pid int) (c Counters, ok bool, err error) {
	b, err := ReadSettled("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return c, false, err
	}
	c, ok = ParseCounters(b)
	return c, ok, nil
}

// ParseCounters reads the counters from a NUL-separated environment.
func ParseCounters(environ []byte) (Counters, bool) {
	var c Counters
	found := false
	for _, kv := range bytes.Split(environ, []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		switch k {
		case "HAPROXY_MWORKER_WAIT_ONLY":
			c.WaitMode = v == "1"
		case "HAPROXY_PROCESSES":
			for _, entry := range strings.Split(v, "|") {
				fields := map[string]string{}
				for _, f := range strings.Split(entry, ";") {
					if fk, fv, ok := strings.Cut(f, "="); ok {
						fields[fk] = fv
					}
				}
				if fields["type"] != "m" {
					continue
				}
				r, err1 := strconv.Atoi(fields["reloads"])
				f, err2 := strconv.Atoi(fields["failedreloads"])
				if err1 == nil && err2 == nil {
					c.Reloads, c.Failed, found = r, f, true
				}
			}
		}
	}
	return c, found
}

// String is for messages.
func (c Counters) String() string {
	return fmt.Sprintf("reloads %d, failed %d", c.Reloads, c.Failed)
}
