package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Netlink sock_diag constants (linux/sock_diag.h, linux/inet_diag.h).
const (
	netlinkInetDiag  = 4  // NETLINK_INET_DIAG (NETLINK_SOCK_DIAG)
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	tcpListen        = 10 // TCP_LISTEN
	inetDiagReqLen   = 56 // struct inet_diag_req_v2
	inetDiagMsgLen   = 72 // struct inet_diag_msg
)

// listenInodes asks the kernel over netlink sock_diag for the LISTENing
// TCP sockets of family (AF_INET or AF_INET6), as ss(8) does. Unlike
// /proc/net/tcp it does not walk established and TIME_WAIT sockets, so it
// stays fast on a busy proxy with many connections. It returns each
// socket's address keyed by inode.
func listenInodes(family uint8) (map[uint32]Socket, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, netlinkInetDiag)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer syscall.Close(fd)
	tv := syscall.Timeval{Sec: 2}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}

	req := make([]byte, syscall.NLMSG_HDRLEN+inetDiagReqLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], sockDiagByFamily)
	binary.NativeEndian.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1) // sequence
	body := req[syscall.NLMSG_HDRLEN:]
	body[0] = family
	body[1] = syscall.IPPROTO_TCP
	binary.NativeEndian.PutUint32(body[4:], 1<<tcpListen) // states
	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag send: %w", err)
	}

	out := map[uint32]Socket{}
	buf := make([]byte, 64<<10)
	for range 1 << 16 { // bounded: each round reads at least one message
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag recv: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag parse: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return out, nil
			case syscall.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return nil, fmt.Errorf("sock_diag: %w", syscall.Errno(-errno))
					}
				}
				return nil, errors.New("sock_diag: error reply")
			}
			s, inode, ok := parseDiagMsg(m.Data)
			if ok {
				out[inode] = s
			}
		}
	}
	return nil, errors.New("sock_diag: no end of dump")
}

// parseDiagMsg decodes struct inet_diag_msg: family, state, timer,
// retrans, then inet_diag_sockid (sport and dport big-endian, src and dst
// 16 bytes each, interface, cookie), expires, rqueue, wqueue, uid, inode.
func parseDiagMsg(d []byte) (Socket, uint32, bool) {
	if len(d) < inetDiagMsgLen {
		return Socket{}, 0, false
	}
	family := d[0]
	port := binary.BigEndian.Uint16(d[4:6])
	var ip net.IP
	switch family {
	case syscall.AF_INET:
		ip = net.IP(append([]byte(nil), d[8:12]...))
	case syscall.AF_INET6:
		ip = net.IP(append([]byte(nil), d[8:24]...))
	default:
		return Socket{}, 0, false
	}
	inode := binary.NativeEndian.Uint32(d[68:72])
	return Socket{IP: ip.String(), Port: uint32(port)}, inode, true
}
