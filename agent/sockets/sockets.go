// Package sockets lists the TCP sockets in LISTEN state on this host and
// the processes holding them: netlink sock_diag first (as ss(8) does),
// /proc/net/tcp{,6} where that is unavailable or for another network
// namespace, and /proc/PID/fd to tie a socket to its holders.
//
// agent/procs (ghost sweep: the addresses each haproxy process LISTENs on)
// and agent/probe (how many processes LISTEN where a probe connects) both
// read it; the kernel interface is subtle enough to have one reader.
package sockets

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Table maps a LISTEN socket's inode (the N of /proc/PID/fd's
// "socket:[N]") to its local address. An IPv4-mapped IPv6 address is
// given in its IPv4 form.
type Table map[uint64]netip.AddrPort

// Listening returns the TCP LISTEN sockets, IPv4 and IPv6, of the
// caller's network namespace. It asks netlink sock_diag, which filters by
// state in the kernel, so its cost does not grow with the established and
// TIME_WAIT sockets of a busy proxy (tens of thousands); where sock_diag
// is unavailable (module missing, seccomp) it reads /proc/self/net/tcp{,6},
// which walks them all.
func Listening() (Table, error) {
	tab, derr := dump()
	if derr == nil {
		return tab, nil
	}
	tab, err := readProcNet("self")
	if err != nil {
		return nil, errors.Join(derr, err)
	}
	return tab, nil
}

// ListeningIn returns the TCP LISTEN sockets of pid's network namespace
// from /proc/PID/net/tcp{,6}: sock_diag answers only for the caller's own
// namespace, so this serves a process in a container. A process that has
// exited has no sockets.
func ListeningIn(pid int32) (Table, error) {
	return readProcNet(strconv.Itoa(int(pid)))
}

// Held returns the inodes of the sockets in tab that pid holds open, each
// once, in the order of its file descriptors. It reads the links in
// /proc/PID/fd (another user's process needs CAP_SYS_PTRACE); the error
// is the directory's, so fs.ErrNotExist means the process has exited.
// Read tab once per sweep and pass it for every process: Held itself does
// not read any socket table.
func Held(pid int32, tab Table) ([]uint64, error) {
	if len(tab) == 0 {
		return nil, nil
	}
	dir := "/proc/" + strconv.Itoa(int(pid)) + "/fd/"
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, fd := range fds {
		link, err := os.Readlink(dir + fd.Name())
		if err != nil {
			continue // closed meanwhile
		}
		n, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(n, "]"), 10, 64)
		if err != nil {
			continue
		}
		// The same socket may sit on several fds (dup, inherited); a
		// process holds only a few listeners, so a linear check is fine.
		if _, ok := tab[ino]; ok && !slices.Contains(out, ino) {
			out = append(out, ino)
		}
	}
	return out, nil
}
