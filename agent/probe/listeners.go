package probe

import (
	"context"
	"fmt"
	"net"
	"strconv"

	gnet "github.com/shirou/gopsutil/v3/net"
)

// Socket is one LISTENing TCP socket and the process holding it.
type Socket struct {
	PID  int32
	IP   string
	Port uint32
}

// ListenSockets lists the host's LISTENing TCP sockets with their owners
// (one scan of /proc through gopsutil).
func ListenSockets(ctx context.Context) ([]Socket, error) {
	conns, err := gnet.ConnectionsWithContext(ctx, "tcp")
	if err != nil {
		return nil, fmt.Errorf("list sockets: %w", err)
	}
	var out []Socket
	for _, c := range conns {
		if c.Status == "LISTEN" && c.Pid != 0 {
			out = append(out, Socket{PID: c.Pid, IP: c.Laddr.IP, Port: c.Laddr.Port})
		}
	}
	return out, nil
}

// ListenerCounter returns a ListenerCount over a fixed list of sockets:
// the number of distinct processes LISTENing where a connection to addr
// lands (the exact IP, or a wildcard on the same port).
func ListenerCounter(socks []Socket) func(addr string) int {
	return func(addr string) int {
		host, ps, err := net.SplitHostPort(addr)
		if err != nil {
			return 0
		}
		port, err := strconv.ParseUint(ps, 10, 32)
		if err != nil {
			return 0
		}
		ip := net.ParseIP(host)
		pids := map[int32]bool{}
		for _, s := range socks {
			if s.Port != uint32(port) {
				continue
			}
			sip := net.ParseIP(s.IP)
			if sip == nil || sip.IsUnspecified() || (ip != nil && sip.Equal(ip)) {
				pids[s.PID] = true
			}
		}
		return len(pids)
	}
}
