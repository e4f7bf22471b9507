package procs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenDiag asks the kernel (netlink sock_diag, as ss does) for the TCP
// sockets in LISTEN state of the caller's network namespace, IPv4 and
// IPv6, and returns inode -> "addr:port". The kernel filters by state, so
// unlike /proc/net/tcp the cost does not grow with established and
// TIME_WAIT sockets (tens of thousands on a busy proxy).
func listenDiag() (map[uint64]string, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag bind: %w", err)
	}
	out := map[uint64]string{}
	for seq, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := diagDump(fd, uint32(seq+1), family, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

const (
	tcpListen        = 10 // TCP_LISTEN in the kernel's tcp_states.h
	sizeofDiagReq    = 56 // struct inet_diag_req_v2
	sizeofDiagMsg    = 72 // struct inet_diag_msg
	nlmsgHeaderBytes = unix.SizeofNlMsghdr
)

// diagDump sends one SOCK_DIAG_BY_FAMILY dump request and reads the
// answers until NLMSG_DONE.
func diagDump(fd int, seq uint32, family uint8, out map[uint64]string) error {
	req := make([]byte, nlmsgHeaderBytes+sizeofDiagReq)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	body := req[nlmsgHeaderBytes:]
	body[0] = family
	body[1] = unix.IPPROTO_TCP
	ne.PutUint32(body[4:], 1<<tcpListen)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag send: %w", err)
	}
	buf := make([]byte, 64<<10)
	for range 1 << 16 { // bounded: a dump ends with NLMSG_DONE
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("sock_diag recv: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("sock_diag parse: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(ne.Uint32(m.Data)); errno != 0 {
						return fmt.Errorf("sock_diag: %w", unix.Errno(-errno))
					}
				}
				return errors.New("sock_diag: error reply")
			case unix.SOCK_DIAG_BY_FAMILY:
				if addr, ino, ok := decodeDiagMsg(m.Data); ok {
					out[ino] = addr
				}
			}
		}
	}
	return errors.New("sock_diag: dump did not end")
}

// decodeDiagMsg reads family, source address/port and inode from a
// struct inet_diag_msg. Ports and addresses are in network byte order.
func decodeDiagMsg(d []byte) (addr string, inode uint64, ok bool) {
	if len(d) < sizeofDiagMsg || d[1] != tcpListen {
		return "", 0, false
	}
	port := binary.BigEndian.Uint16(d[4:6])
	var ip net.IP
	switch d[0] {
	case unix.AF_INET:
		ip = net.IP(append([]byte(nil), d[8:12]...))
	case unix.AF_INET6:
		ip = net.IP(append([]byte(nil), d[8:24]...))
	default:
		return "", 0, false
	}
	inode = uint64(binary.NativeEndian.Uint32(d[68:72]))
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), inode, inode != 0
}

// ownNetns is the network namespace of this process ("net:[4026531840]").
func ownNetns() string {
	ns, _ := os.Readlink("/proc/self/ns/net")
	return ns
}
