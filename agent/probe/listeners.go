package probe

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Socket is one LISTENing TCP socket and the process holding it.
type Socket struct {
	PID  int32
	IP   string
	Port uint32
}

// ListenSockets lists the LISTENing TCP sockets of this network namespace
// with the processes holding them: the sockets from netlink sock_diag (or
// /proc/net/tcp{,6} where that is unavailable), their owners from
// /proc/PID/fd. Every socket is kept, also several on one address: that is
// exactly the SO_REUSEPORT case (a ghost next to the current worker), which
// gopsutil's connection list folds into one entry.
func ListenSockets(ctx context.Context) ([]Socket, error) {
	byInode, err := diagListeners()
	if err != nil {
		if byInode, err = procNetListeners("/proc"); err != nil {
			return nil, err
		}
	}
	return owners(ctx, "/proc", byInode)
}

func diagListeners() (map[string]Socket, error) {
	out := map[string]Socket{}
	for _, fam := range []uint8{syscall.AF_INET, syscall.AF_INET6} {
		m, err := listenInodes(fam)
		if err != nil {
			return nil, err
		}
		for ino, s := range m {
			out[strconv.FormatUint(uint64(ino), 10)] = s
		}
	}
	return out, nil
}

// procNetListeners reads the LISTEN lines of /proc/net/tcp{,6}, keyed by
// inode. It walks every connection in the kernel, so it is the fallback.
func procNetListeners(proc string) (map[string]Socket, error) {
	byInode := map[string]Socket{}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join(proc, "net", f))
		if err != nil {
			if f == "tcp6" && os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("list sockets: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fl := strings.Fields(line)
			if len(fl) < 10 || fl[3] != "0A" { // 0A = TCP_LISTEN
				continue
			}
			ip, port, ok := parseProcAddr(fl[1])
			if ok {
				byInode[fl[9]] = Socket{IP: ip, Port: port}
			}
		}
	}
	return byInode, nil
}

// owners finds, for each socket inode, every process holding it.
func owners(ctx context.Context, proc string, byInode map[string]Socket) ([]Socket, error) {
	var out []Socket
	if len(byInode) == 0 {
		return out, nil
	}
	pids, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list sockets: %w", err)
	}
	for _, p := range pids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(proc, p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		seen := map[string]bool{}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			ino, ok := strings.CutPrefix(link, "socket:[")
			if !ok {
				continue
			}
			ino = strings.TrimSuffix(ino, "]")
			if s, ok := byInode[ino]; ok && !seen[ino] {
				seen[ino] = true
				s.PID = int32(pid)
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// parseProcAddr decodes /proc/net/tcp's "0100007F:0CEA" (IPv4, or 32 hex
// digits for IPv6; each 32-bit word in host byte order, little-endian here).
func parseProcAddr(s string) (ip string, port uint32, ok bool) {
	h, p, found := strings.Cut(s, ":")
	if !found {
		return "", 0, false
	}
	pv, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return "", 0, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", 0, false
	}
	addr := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		addr[i], addr[i+1], addr[i+2], addr[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	return addr.String(), uint32(pv), true
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
