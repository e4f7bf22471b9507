package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Parts of linux/inet_diag.h, linux/sock_diag.h, net/tcp_states.h and
// net/sock.h that golang.org/x/sys does not define.
const (
	tcpClose         = 7  // TCP_CLOSE: also an unconnected UDP socket
	tcpListen        = 10 // TCP_LISTEN
	sizeofDiagReq    = 56 // struct inet_diag_req_v2
	sizeofDiagMsg    = 72 // struct inet_diag_msg
	inetDiagShutdown = 8  // INET_DIAG_SHUTDOWN: a u8 of sk_shutdown bits, sent with every socket
	rcvShutdown      = 1  // RCV_SHUTDOWN
)

// recvTimeout bounds each read of the dump: the kernel answers at once,
// so a silent socket is a broken one, not a slow one.
var recvTimeout = unix.Timeval{Sec: 2}

// dump asks netlink sock_diag for the listening sockets of protos in the
// caller's network namespace (the netlink socket's), IPv4 then IPv6 for
// each protocol, over one socket. TCP failing is an error; UDP failing
// (udp_diag is a module of its own) gives the TCP table and an
// *IncompleteError.
func dump(protos Proto) (Table, error) {
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
	seq := uint32(0)
	for _, proto := range []Proto{TCP, UDP} {
		if protos&proto == 0 {
			continue
		}
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			seq++
			if err := dumpFamily(fd, seq, family, proto, out); err != nil {
				if proto == UDP {
					return out, &IncompleteError{Missing: UDP, Err: err}
				}
				return nil, err
			}
		}
	}
	return out, nil
}

// dumpFamily sends one SOCK_DIAG_BY_FAMILY dump request for family and
// proto and reads the answers into out until NLMSG_DONE.
func dumpFamily(fd int, seq uint32, family uint8, proto Proto, out Table) error {
	ne := binary.NativeEndian
	req := make([]byte, unix.NLMSG_HDRLEN+sizeofDiagReq)
	ne.PutUint32(req[0:], uint32(len(req))) // nlmsg_len
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	body := req[unix.NLMSG_HDRLEN:] // struct inet_diag_req_v2
	body[0] = family                // sdiag_family
	if proto == UDP {
		body[1] = unix.IPPROTO_UDP          // sdiag_protocol
		ne.PutUint32(body[4:], 1<<tcpClose) // idiag_states: unconnected
	} else {
		body[1] = unix.IPPROTO_TCP
		ne.PutUint32(body[4:], 1<<tcpListen)
	}
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
						return fmt.Errorf("sock_diag %s: %w", proto, unix.Errno(-errno))
					}
				}
				return errors.New("sock_diag: error reply")
			case unix.SOCK_DIAG_BY_FAMILY:
				if ino, l, ok := decodeDiagMsg(m.Data, proto); ok {
					out[ino] = l
				}
			}
		}
	}
	return errors.New("sock_diag: dump did not end")
}

// decodeDiagMsg reads a struct inet_diag_msg: family, state, timer,
// retrans, then inet_diag_sockid (source and destination port in network
// byte order, source and destination address 16 bytes each, interface,
// cookie), expires, rqueue, wqueue, uid, inode; then netlink attributes,
// of which INET_DIAG_SHUTDOWN matters for UDP. ok is false for anything
// that is not a listener of proto.
func decodeDiagMsg(d []byte, proto Proto) (inode uint64, l Listener, ok bool) {
	if len(d) < sizeofDiagMsg {
		return 0, Listener{}, false
	}
	var ip netip.Addr
	switch d[0] {
	case unix.AF_INET:
		ip = netip.AddrFrom4([4]byte(d[8:12]))
	case unix.AF_INET6:
		ip = netip.AddrFrom16([16]byte(d[8:24])).Unmap()
	default:
		return 0, Listener{}, false
	}
	port := binary.BigEndian.Uint16(d[4:6])
	inode = uint64(binary.NativeEndian.Uint32(d[68:72]))
	l = Listener{AddrPort: netip.AddrPortFrom(ip, port), Proto: proto}
	switch proto {
	case TCP:
		return inode, l, d[1] == tcpListen && inode != 0
	case UDP:
		// Bound (a port), not connected (no peer port), and not shut down
		// for reading: haproxy's UDP log senders are autobound on their
		// first datagram and shut down for reading.
		peerPort := binary.BigEndian.Uint16(d[6:8])
		return inode, l, d[1] == tcpClose && port != 0 && peerPort == 0 && inode != 0 && shutdown(d[sizeofDiagMsg:])&rcvShutdown == 0
	}
	return 0, Listener{}, false
}

// shutdown returns the INET_DIAG_SHUTDOWN attribute's value among attrs
// (struct rtattr: u16 length including the 4-byte header, u16 type, data
// padded to 4 bytes), 0 when absent.
func shutdown(attrs []byte) byte {
	for len(attrs) >= 4 {
		n := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4])
		if n < 4 || n > len(attrs) {
			return 0
		}
		if typ == inetDiagShutdown && n >= 5 {
			return attrs[4]
		}
		attrs = attrs[min((n+3)&^3, len(attrs)):]
	}
	return 0
}
