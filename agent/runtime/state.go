// Package runtime applies changes that need no reload (a server's admin
// state, weight and address; map entries) to every live haproxy process
// through the master CLI (`@!PID`), reads each back, and reverts the
// processes that took a change when one that must take it did not.
package runtime

import (
	"fmt"
	"strconv"
	"strings"
)

// Admin states a server can be set to (set server ... state).
const (
	StateReady = "ready"
	StateDrain = "drain"
	StateMaint = "maint"
)

// Server is one server as one process holds it (`show servers state`).
type Server struct {
	Backend string `json:"backend"`
	Name    string `json:"server"`
	Addr    string `json:"addr"`
	Port    int    `json:"port"`
	// State is the admin state: ready, drain or maint.
	State string `json:"state"`
	// Up is the operational state (srv_op_state 2 = running).
	Up bool `json:"up"`
	// Weight is the user weight; InitWeight the config's.
	Weight     int `json:"weight"`
	InitWeight int `json:"init_weight"`
	// Admin is haproxy's srv_admin_state bit field.
	Admin int `json:"admin_bits"`
}

// Admin-state bits of srv_admin_state (haproxy's SRV_ADMF_*).
const (
	admForcedMaint = 0x01
	admInhMaint    = 0x02
	admForcedDrain = 0x08
	admInhDrain    = 0x10
	admResolvMaint = 0x20
	admHostMaint   = 0x40
)

func stateOf(admin int) string {
	switch {
	// CMAINT alone is no maintenance: haproxy keeps it as a mark of the
	// config's "disabled" once "state ready" clears FMAINT (admin 4, UP).
	case admin&(admForcedMaint|admInhMaint|admResolvMaint|admHostMaint) != 0:
		return StateMaint
	case admin&(admForcedDrain|admInhDrain) != 0:
		return StateDrain
	}
	return StateReady
}

// ParseServersState reads the answer to `show servers state [BACKEND]`
// (format version 1: be_id be_name srv_id srv_name srv_addr srv_op_state
// srv_admin_state srv_uweight srv_iweight ... srv_port ...).
func ParseServersState(out string) ([]Server, error) {
	var servers []Server
	for n, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || line == "1" && n == 0 {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 19 {
			return nil, fmt.Errorf("show servers state line %d: %d fields in %q (%s)", n+1, len(f), line, firstLine(out))
		}
		ints := map[int]int{}
		for _, i := range []int{5, 6, 7, 8, 18} {
			v, err := strconv.Atoi(f[i])
			if err != nil {
				return nil, fmt.Errorf("show servers state line %d: field %d %q: %w", n+1, i+1, f[i], err)
			}
			ints[i] = v
		}
		servers = append(servers, Server{Backend: f[1], Name: f[3], Addr: f[4], Up: ints[5] == 2, Admin: ints[6],
			State: stateOf(ints[6]), Weight: ints[7], InitWeight: ints[8], Port: ints[18]})
	}
	return servers, nil
}

// Entry is one map entry.
type Entry struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ParseShowMap reads the answer to `show map MAP`: "0xID key value".
func ParseShowMap(out string) ([]Entry, error) {
	var es []Entry
	for n, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		id, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(id, "0x") {
			return nil, fmt.Errorf("show map line %d: %q", n+1, line)
		}
		k, v, _ := strings.Cut(rest, " ")
		es = append(es, Entry{Key: k, Value: v})
	}
	return es, nil
}

// CountSessions counts the lines of `show sess` on backend/server.
func CountSessions(out, backend, server string) int {
	n := 0
	be, srv := " be="+backend+" ", " srv="+server+" "
	for _, l := range strings.Split(out, "\n") {
		l += " "
		if strings.Contains(l, be) && strings.Contains(l, srv) {
			n++
		}
	}
	return n
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
