package probe

import (
	"net"
	"strconv"
	"strings"
	"time"
)

// Listener is what target inference needs to know about one haproxy
// frontend or listen section (with its default backend). It is this
// package's own small model; Listeners adapts the config model to it.
type Listener struct {
	// Section is the frontend/listen name, for messages.
	Section string
	// Mode is tcp or http (empty means tcp, haproxy's default).
	Mode string
	// Binds are the bind addresses as written: "*:3307", ":80",
	// "127.0.0.1:3307", "[::]:443", "ipv4@0.0.0.0:80", "/run/x.sock".
	Binds []string
	// MySQLCheck: the backend has `option mysql-check`.
	MySQLCheck bool
	// HTTPCheck: the backend has `option httpchk`.
	HTTPCheck bool
	// ServerPorts are the ports of the backend's servers.
	ServerPorts []int
	// Backends are the names of the backends it routes to.
	Backends []string
	// GiveUp is the longest time haproxy takes to give up on a server of
	// those backends that refuses connections (see GiveUpOf).
	GiveUp time.Duration
	// ErrorPages are the bodies of the config's own error pages that
	// apply to the listener, by status (see Target.ErrorPages).
	ErrorPages map[int][]string
}

// mysqlPort is MySQL's registered port.
const mysqlPort = 3306

// InferKind picks the probe kind for a listener: http for mode http;
// mysql for mode tcp with mysql-check, a bind on 3306 or servers on 3306;
// tcp otherwise. (An httpchk in mode tcp is a side channel such as
// clustercheck on 9200; the traffic itself follows the other rules.)
func InferKind(l Listener) string {
	if strings.EqualFold(l.Mode, "http") {
		return KindHTTP
	}
	if l.MySQLCheck {
		return KindMySQL
	}
	for _, p := range l.ServerPorts {
		if p == mysqlPort {
			return KindMySQL
		}
	}
	for _, b := range l.Binds {
		if _, port, ok := ProbeAddress(b); ok && port == mysqlPort {
			return KindMySQL
		}
	}
	return KindTCP
}

// InferTargets returns one target per distinct bind address of the
// listeners, with the inferred kind. override, when not empty, replaces
// the kind of every target (the --kind flag). Binds that cannot be
// probed over TCP (unix sockets, abstract namespaces) are skipped.
func InferTargets(ls []Listener, override string) []Target {
	var out []Target
	seen := map[string]bool{}
	for _, l := range ls {
		kind := InferKind(l)
		for _, b := range l.Binds {
			addr, _, ok := ProbeAddress(b)
			if !ok || seen[addr] {
				continue
			}
			seen[addr] = true
			t := Target{Address: addr, Kind: kind, GiveUp: l.GiveUp, Backends: l.Backends, ErrorPages: l.ErrorPages}
			if override != "" {
				t.Kind = override
			}
			if t.Kind == KindIdleHold {
				t.Over = kind
				if kind == KindHTTP {
					t.Over = KindTCP
				}
			}
			out = append(out, t)
		}
	}
	return out
}

// ProbeAddress turns a bind address into one to dial: a wildcard or empty
// host becomes loopback (127.0.0.1, or [::1] for "::"), a port range its
// first port. ok is false for unix sockets and other non-TCP binds.
func ProbeAddress(bind string) (addr string, port int, ok bool) {
	b := strings.TrimSpace(bind)
	if i := strings.Index(b, "@"); i >= 0 {
		switch b[:i] {
		case "ipv4", "ipv6", "tcp", "tcp4", "tcp6":
			b = b[i+1:]
		default:
			return "", 0, false // unix@, abns@, fd@, sockpair@, udp@, quic4@...
		}
	}
	if strings.HasPrefix(b, "/") {
		return "", 0, false
	}
	i := strings.LastIndex(b, ":")
	if i < 0 {
		return "", 0, false
	}
	host, ports := b[:i], b[i+1:]
	ports, _, _ = strings.Cut(ports, "-")
	p, err := strconv.Atoi(ports)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, false
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	switch host {
	case "", "*", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), p, true
}
