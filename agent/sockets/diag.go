package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Parts of linux/inet_diag.h and net/tcp_states.h that golang.org/x/sys
// does not define.
const (
	tcpListen     = 10 // TCP_LISTEN
	sizeofDiagReq = 56 // struct inet_diag_req_v2
	sizeofDiagMsg = 72 // struct inet_diag_msg
)

// recvTimeout bounds each read of the dump: the kernel answers at once,
// so a silent socket is a broken one, not a slow one.
var recvTimeout = unix.Timeval{Sec: 2}

// dump asks netlink sock_diag for the TCP sockets in LISTEN state of the
// caller's network namespace, IPv4 then IPv6, over one socket.
func dump() (Table, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &recvTimeout); err != nil {
		return nil, fmt.Errorf("sock_diag receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag bind: %w", err)
	}
	out := Table{}
	for i, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := dumpFamily(fd, uint32(i+1), family, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dumpFamily sends one SOCK_DIAG_BY_FAMILY dump request for family and
// reads the answers into out until NLMSG_DONE.
func dumpFamily(fd int, seq uint32, family uint8, out Table) error {
	ne := binary.NativeEndian
	req := make([]byte, unix.NLMSG_HDRLEN+sizeofDiagReq)
	ne.PutUint32(req[0:], uint32(len(req))) // nlmsg_len
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	body := req[unix.NLMSG_HDRLEN:]      // struct inet_diag_req_v2
	body[0] = family                     // sdiag_family
	body[1] = unix.IPPROTO_TCP           // sdiag_protocol
	ne.PutUint32(body[4:], 1<<tcpListen) // idiag_states
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag send: %w", err)
	}
	buf := make([]byte, 64<<10)
	for range 1 << 16 { // bounded: each round reads a datagram or fails
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
				continue // a late answer to an earlier request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				// struct nlmsgerr: a negative errno, then the request.
				if len(m.Data) >= 4 {
					if errno := int32(ne.Uint32(m.Data)); errno != 0 {
						return fmt.Errorf("sock_diag: %w", unix.Errno(-errno))
					}
				}
				return errors.New("sock_diag: error reply")
			case unix.SOCK_DIAG_BY_FAMILY:
				if ino, addr, ok := decodeDiagMsg(m.Data); ok {
					out[ino] = addr
				}
			}
		}
	}
	return errors.New("sock_diag: dump did not end")
}

// decodeDiagMsg reads a struct inet_diag_msg: family, state, timer,
// retrans, then inet_diag_sockid (source and destination port in network
// byte order, source and destination address 16 bytes each, interface,
// cookie), expires, rqueue, wqueue, uid, inode.
func decodeDiagMsg(d []byte) (inode uint64, addr netip.AddrPort, ok bool) {
	if len(d) < sizeofDiagMsg || d[1] != tcpListen {
		return 0, netip.AddrPort{}, false
	}
	var ip netip.Addr
	switch d[0] {
	case unix.AF_INET:
		ip = netip.AddrFrom4([4]byte(d[8:12]))
	case unix.AF_INET6:
		ip = netip.AddrFrom16([16]byte(d[8:24])).Unmap()
	default:
		return 0, netip.AddrPort{}, false
	}
	inode = uint64(binary.NativeEndian.Uint32(d[68:72]))
	return inode, netip.AddrPortFrom(ip, binary.BigEndian.Uint16(d[4:6])), inode != 0
}
