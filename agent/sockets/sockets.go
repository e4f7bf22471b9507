// Package sockets lists the listening sockets of a network namespace and
// the processes holding them: TCP sockets in LISTEN state, and UDP
// sockets bound to a port that wait for datagrams (haproxy's QUIC binds,
// quic4@/quic6@, and log-forward dgram-binds). It asks netlink sock_diag
// first (as ss(8) does), reads /proc/net/tcp{,6} where that is
// unavailable, and ties a socket to its holders through /proc/PID/fd.
//
// agent/procs (the ghost sweep: the addresses each haproxy process
// listens on) and agent/probe (how many processes LISTEN where a probe
// connects) both read it; the kernel interface is subtle enough to have
// one reader.
package sockets

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/haguard/haguard/agent/netns"
)

// socketPrefix starts the link of a socket's fd in /proc/PID/fd.
var socketPrefix = []byte("socket:[")

// Proto selects the kinds of listening sockets to read; combine with |.
type Proto uint8

const (
	// TCP sockets in LISTEN state.
	TCP Proto = 1 << iota
	// UDP sockets bound to a local port, not connected to a peer, and not
	// shut down for reading. The last two leave out what haproxy uses to
	// send: a DNS resolver's socket is connected, a UDP log target's is
	// shut down for reading (ss shows it as "-->").
	UDP
)

func (p Proto) String() string {
	var parts []string
	if p&TCP != 0 {
		parts = append(parts, "tcp")
	}
	if p&UDP != 0 {
		parts = append(parts, "udp")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// Listener is one listening socket.
type Listener struct {
	netip.AddrPort
	// Proto is TCP or UDP.
	Proto Proto
}

// String is the address, "127.0.0.1:80" for TCP and "127.0.0.1:443/udp"
// for UDP (the notation of /etc/services), so that a TCP and a UDP
// listener on the same port never compare equal.
func (l Listener) String() string {
	if l.Proto == UDP {
		return l.AddrPort.String() + "/udp"
	}
	return l.AddrPort.String()
}

// Table maps a listening socket's inode (the N of /proc/PID/fd's
// "socket:[N]") to its address. An IPv4-mapped IPv6 address is given in
// its IPv4 form.
type Table map[uint64]Listener

// IncompleteError is returned with a Table that holds some of the
// protocols asked for but not all: Missing could not be read, Err says
// why. UDP listeners are read only through sock_diag: /proc/net/udp does
// not say whether a socket is shut down for reading, so haproxy's log
// senders could not be told from its QUIC listeners.
type IncompleteError struct {
	Missing Proto
	Err     error
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("%s listeners unknown: %v", e.Missing, e.Err)
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// Listening returns the listening sockets of protos in the caller's
// network namespace. It asks netlink sock_diag, which filters by state
// in the kernel, so its cost does not grow with the established and
// TIME_WAIT sockets of a busy proxy (tens of thousands); where sock_diag
// is unavailable (module missing, seccomp) TCP comes from
// /proc/self/net/tcp{,6}, which walks them all, and UDP is reported
// missing (*IncompleteError, with the TCP table).
func Listening(protos Proto) (Table, error) {
	tab, err := dump(protos)
	return complete(tab, err, "self", protos)
}

// ListeningIn returns the listening sockets of protos in pid's network
// namespace. sock_diag answers only for the caller's own namespace, so
// it is asked from a thread that enters pid's (agent/netns: that needs
// CAP_SYS_ADMIN, unless pid is in the caller's namespace); when that is
// not permitted, TCP comes from /proc/PID/net/tcp{,6} and UDP is
// reported missing (*IncompleteError, with the TCP table). A process
// that has exited has no sockets.
func ListeningIn(pid int32, protos Proto) (Table, error) {
	var tab Table
	var derr error
	if err := netns.Do(pid, func() error {
		tab, derr = dump(protos)
		return nil
	}); err != nil {
		tab, derr = nil, err
	}
	return complete(tab, derr, strconv.Itoa(int(pid)), protos)
}

// complete returns what sock_diag read (tab, derr), falling back to
// /proc/<pid>/net for TCP when sock_diag could not be asked at all.
func complete(tab Table, derr error, pid string, protos Proto) (Table, error) {
	var inc *IncompleteError
	if derr == nil || errors.As(derr, &inc) {
		return tab, derr // all, or TCP without UDP
	}
	tab = Table{}
	if protos&TCP != 0 {
		var err error
		if tab, err = readProcNet(pid); err != nil {
			return nil, errors.Join(derr, err)
		}
	}
	if protos&UDP != 0 {
		return tab, &IncompleteError{Missing: UDP, Err: derr}
	}
	return tab, nil
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
	// The links are read relative to the directory's fd: a path per link
	// would make the kernel walk /proc/PID/fd again for each one, and the
	// names need neither sorting nor a stat.
	dir := "/proc/" + strconv.Itoa(int(pid)) + "/fd"
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	names, err := fdNames(dfd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var out []uint64
	var buf [64]byte // "socket:[18446744073709551615]" fits
	for _, name := range names {
		n, err := unix.Readlinkat(dfd, name, buf[:])
		if err != nil || n <= 0 {
			continue // closed meanwhile
		}
		link := buf[:n]
		if !bytes.HasPrefix(link, socketPrefix) || link[n-1] != ']' {
			continue
		}
		ino, err := strconv.ParseUint(string(link[len(socketPrefix):n-1]), 10, 64)
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

// fdNames lists the entries of the open directory dfd.
func fdNames(dfd int) ([]string, error) {
	var names []string
	var buf [4096]byte
	for {
		n, err := unix.ReadDirent(dfd, buf[:])
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
