package probe

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/haguard/haguard/agent/sockets"
)

// Socket is one LISTENing TCP socket and the process holding it.
type Socket struct {
	PID  int32
	IP   string
	Port uint32
}

// ListenSockets lists the LISTENing TCP sockets of this network namespace
// with the processes holding them: the sockets from agent/sockets (netlink
// sock_diag, or /proc/net/tcp{,6} where that is unavailable), their owners
// from /proc/PID/fd. Every socket is kept, also several on one address:
// that is exactly the SO_REUSEPORT case (a ghost next to the current
// worker), which gopsutil's connection list folds into one entry.
func ListenSockets(ctx context.Context) ([]Socket, error) {
	tab, err := sockets.Listening(sockets.TCP)
	if err != nil {
		return nil, fmt.Errorf("list sockets: %w", err)
	}
	var out []Socket
	if len(tab) == 0 {
		return out, nil
	}
	pids, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list sockets: %w", err)
	}
	for _, p := range pids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pid, err := strconv.ParseInt(p.Name(), 10, 32)
		if err != nil {
			continue
		}
		inodes, err := sockets.Held(int32(pid), tab)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, ino := range inodes {
			a := tab[ino]
			out = append(out, Socket{PID: int32(pid), IP: a.Addr().String(), Port: uint32(a.Port())})
		}
	}
	return out, nil
}

// CountsFixed reports whether every target's attempt count is set, by
// the target or by opts: RunCounted then counts the listeners only to
// report them.
func CountsFixed(targets []Target, opts Options) bool {
	for _, t := range targets {
		if t.Count == 0 && opts.Count == 0 {
			return false
		}
	}
	return true
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

// RunCounted runs the probes with the number of processes LISTENing on
// each target, so that every SO_REUSEPORT listener (ghosts included) gets
// its share of attempts. When every target's attempt count is fixed, the
// count is only reported, and the socket scan runs while the probes do.
func RunCounted(ctx context.Context, targets []Target, opts Options) Report {
	if !CountsFixed(targets, opts) {
		if socks, err := ListenSockets(ctx); err == nil {
			opts.ListenerCount = ListenerCounter(socks)
		} else if opts.Logger != nil {
			opts.Logger.Debug("cannot count listeners; assuming one per target", "err", err)
		}
		return Run(ctx, targets, opts)
	}
	var socks []Socket
	var err error
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		socks, err = ListenSockets(ctx)
	}()
	rep := Run(ctx, targets, opts)
	<-scanned
	if err != nil {
		if opts.Logger != nil {
			opts.Logger.Debug("cannot count listeners", "err", err)
		}
		return rep
	}
	count := ListenerCounter(socks)
	for i := range rep.Targets {
		rep.Targets[i].Listeners = count(rep.Targets[i].Target)
	}
	return rep
}
