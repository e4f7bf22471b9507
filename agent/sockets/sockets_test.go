package sockets

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
)

func TestParseHexAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:0CEB":                         "127.0.0.1:3307",
		"00000000:0050":                         "0.0.0.0:80",
		"00000000000000000000000000000000:1F90": "[::]:8080",
		"00000000000000000000000001000000:01BB": "[::1]:443",
		"0000000000000000FFFF00000100007F:0CEB": "127.0.0.1:3307", // v4-mapped
		"B80D0120000000000000000001000000:0050": "[2001:db8::1]:80",
	} {
		got, ok := parseHexAddr(in)
		if !ok || got.String() != want {
			t.Errorf("%s: got %v %v, want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "0100007F", "zz00007F:0050", "0100007F:zzzz", "0100007F:XYZ", "01007F:0050", "01:0050", "0100007F:10000"} {
		if got, ok := parseHexAddr(bad); ok {
			t.Errorf("%q decoded as %v", bad, got)
		}
	}
}

func TestParseProcNet(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 51234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEB 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 51299 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 100 0 0 10 0
   3: short 0A
`
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 61000 1 0000000000000000 100 0 0 10 0
`
	got := Table{}
	parseProcNet([]byte(tcp), got)
	parseProcNet([]byte(tcp6), got)
	want := Table{51234: {netip.MustParseAddrPort("127.0.0.1:3307"), TCP}, 61000: {netip.MustParseAddrPort("[::]:8080"), TCP}}
	if len(got) != len(want) || got[51234] != want[51234] || got[61000] != want[61000] {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// diagMsg builds a struct inet_diag_msg for 127.0.0.1:3307 followed by
// attrs (each already a whole rtattr).
func diagMsg(family, state, inode byte, peerPort uint16, attrs ...[]byte) []byte {
	d := make([]byte, sizeofDiagMsg)
	d[0], d[1] = family, state
	d[4], d[5] = 0x0c, 0xeb // port 3307, network order
	binary.BigEndian.PutUint16(d[6:8], peerPort)
	copy(d[8:], []byte{127, 0, 0, 1})
	d[68] = inode // little or big end: non-zero either way
	for _, a := range attrs {
		d = append(d, a...)
	}
	return d
}

// rtattr is one netlink attribute, padded to 4 bytes.
func rtattr(typ uint16, data ...byte) []byte {
	a := make([]byte, 4, 4+len(data)+3)
	binary.NativeEndian.PutUint16(a[0:], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(a[2:], typ)
	a = append(a, data...)
	for len(a)%4 != 0 {
		a = append(a, 0)
	}
	return a
}

func TestDecodeDiagMsg(t *testing.T) {
	if ino, l, ok := decodeDiagMsg(diagMsg(syscall.AF_INET, tcpListen, 7, 0), TCP); !ok || ino == 0 || l.String() != "127.0.0.1:3307" || l.Proto != TCP {
		t.Fatalf("listen socket: %d %v %v", ino, l, ok)
	}
	meminfo := rtattr(1, make([]byte, 16)...)
	for name, d := range map[string][]byte{
		"bound":                 diagMsg(syscall.AF_INET, tcpClose, 7, 0),
		"shut down for writing": diagMsg(syscall.AF_INET, tcpClose, 7, 0, meminfo, rtattr(inetDiagShutdown, 2)),
		"not shut down":         diagMsg(syscall.AF_INET, tcpClose, 7, 0, rtattr(inetDiagShutdown, 0)),
	} {
		if ino, l, ok := decodeDiagMsg(d, UDP); !ok || ino == 0 || l.String() != "127.0.0.1:3307/udp" || l.Proto != UDP {
			t.Errorf("udp %s: %d %v %v", name, ino, l, ok)
		}
	}
	for name, c := range map[string]struct {
		d     []byte
		proto Proto
	}{
		"established":            {diagMsg(syscall.AF_INET, 1, 7, 0), TCP},
		"no inode":               {diagMsg(syscall.AF_INET, tcpListen, 0, 0), TCP},
		"unix family":            {diagMsg(syscall.AF_UNIX, tcpListen, 7, 0), TCP},
		"short":                  {diagMsg(syscall.AF_INET, tcpListen, 7, 0)[:sizeofDiagMsg-1], TCP},
		"udp connected":          {diagMsg(syscall.AF_INET, 1, 7, 53), UDP},
		"udp peer port":          {diagMsg(syscall.AF_INET, tcpClose, 7, 53), UDP},
		"udp shut down for read": {diagMsg(syscall.AF_INET, tcpClose, 7, 0, meminfo, rtattr(inetDiagShutdown, rcvShutdown)), UDP},
		"udp shut down":          {diagMsg(syscall.AF_INET, tcpClose, 7, 0, rtattr(inetDiagShutdown, 3)), UDP},
		"udp no inode":           {diagMsg(syscall.AF_INET, tcpClose, 0, 0), UDP},
	} {
		if _, _, ok := decodeDiagMsg(c.d, c.proto); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	// A truncated or nonsense attribute list is no shutdown, not a panic.
	for _, attrs := range [][]byte{{1, 0}, {3, 0, 8, 0}, {200, 0, 8, 0, 1}} {
		if got := shutdown(attrs); got != 0 {
			t.Errorf("shutdown(%v) = %d", attrs, got)
		}
	}
}

// inodeOf returns the inode of a socket (fstat on its fd), independently
// of the code under test.
func inodeOf(t *testing.T, c syscall.Conn) uint64 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return st.Ino
}

// listen opens a real TCP listener and returns it with its socket's inode.
func listen(t *testing.T, network, addr string) (net.Listener, uint64) {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, inodeOf(t, l.(*net.TCPListener))
}

// listenUDP binds a real UDP socket and returns it with its inode.
func listenUDP(t *testing.T, network, addr string) (*net.UDPConn, uint64) {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn), inodeOf(t, c.(*net.UDPConn))
}

// sources are the readers of this namespace's TCP LISTEN sockets, and
// the exported entry points.
var sources = map[string]func() (Table, error){
	"sock_diag":   func() (Table, error) { return dump(TCP) },
	"/proc/net":   func() (Table, error) { return readProcNet("self") },
	"Listening":   func() (Table, error) { return Listening(TCP) },
	"ListeningIn": func() (Table, error) { return ListeningIn(int32(os.Getpid()), TCP) },
}

// TestListenersFound: a v4 and a v6 listener of ours appear with their
// inode and address in every source, and the two sources agree on every
// socket both saw (others come and go: tests run in parallel on this host).
func TestListenersFound(t *testing.T) {
	l4, ino4 := listen(t, "tcp4", "127.0.0.1:0")
	l6, ino6 := listen(t, "tcp6", "[::1]:0")
	tabs := map[string]Table{}
	for name, read := range sources {
		tab, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tabs[name] = tab
		for ino, l := range map[uint64]net.Listener{ino4: l4, ino6: l6} {
			if got, ok := tab[ino]; !ok || got.String() != l.Addr().String() {
				t.Errorf("%s: inode %d is %v (%v), want %s", name, ino, got, ok, l.Addr())
			}
		}
	}
	for ino, d := range tabs["sock_diag"] {
		if p, ok := tabs["/proc/net"][ino]; ok && p != d {
			t.Errorf("inode %d: sock_diag %v, /proc/net %v", ino, d, p)
		}
	}
}

// TestClosedListenerGone: once closed, a listener is in no source.
func TestClosedListenerGone(t *testing.T) {
	l, ino := listen(t, "tcp4", "127.0.0.1:0")
	if tab, err := Listening(TCP); err != nil || tab[ino].AddrPort != netip.MustParseAddrPort(l.Addr().String()) {
		t.Fatalf("open listener %s (inode %d) not listed: %v", l.Addr(), ino, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for name, read := range sources {
		tab, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a, ok := tab[ino]; ok {
			t.Errorf("%s: closed listener still listed as %v", name, a)
		}
	}
}

// TestHeld: this process holds its listener (once, though on two fds),
// and not a listener that is not in the table; a child holds none of
// them; an exited process is fs.ErrNotExist.
func TestHeld(t *testing.T) {
	l, ino := listen(t, "tcp4", "127.0.0.1:0")
	_, other := listen(t, "tcp6", "[::1]:0")
	f, err := l.(*net.TCPListener).File() // a second fd on the same socket
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := Listening(TCP)
	if err != nil {
		t.Fatal(err)
	}
	delete(tab, other)
	got, err := Held(int32(os.Getpid()), tab)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(slices.DeleteFunc(slices.Clone(got), func(i uint64) bool { return i != ino })); n != 1 {
		t.Errorf("own listener %d found %d times in %v", ino, n, got)
	}
	if slices.Contains(got, other) {
		t.Errorf("listener %d outside the table reported", other)
	}
	if got, err := Held(int32(os.Getpid()), Table{}); err != nil || got != nil {
		t.Errorf("empty table: %v %v", got, err)
	}

	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := int32(child.Process.Pid)
	if got, err := Held(pid, tab); err != nil || slices.Contains(got, ino) {
		t.Errorf("child (close-on-exec fds): %v %v", got, err)
	}
	_ = child.Process.Kill()
	_ = child.Wait()
	if _, err := Held(pid, tab); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("exited process: %v, want fs.ErrNotExist", err)
	}
}

// TestUDPListeners: a bound UDP socket (v4 and v6) is a listener, with
// "/udp" after its address, and is not a TCP one; haproxy's sending
// sockets are not: a connected one (a DNS resolver's) and one shut down
// for reading after its first datagram (a UDP log target's: measured on
// haproxy 2.6, `ss -uapn` shows it as "0.0.0.0:51060 ... -->").
func TestUDPListeners(t *testing.T) {
	u4, ino4 := listenUDP(t, "udp4", "127.0.0.1:0")
	u6, ino6 := listenUDP(t, "udp6", "[::1]:0")
	conn, err := net.Dial("udp4", u4.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connected := inodeOf(t, conn.(*net.UDPConn))
	logger, loggerIno := listenUDP(t, "udp4", "0.0.0.0:0")
	if _, err := logger.WriteTo([]byte("<134>x"), u4.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	rc, err := logger.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	// On an unconnected UDP socket Linux answers ENOTCONN but sets the
	// shutdown bits all the same (inet_shutdown); haproxy ignores it.
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_RD) }); err != nil || (serr != nil && !errors.Is(serr, syscall.ENOTCONN)) {
		t.Fatal(err, serr)
	}
	tab, err := Listening(UDP)
	if err != nil {
		t.Fatal(err)
	}
	for ino, c := range map[uint64]*net.UDPConn{ino4: u4, ino6: u6} {
		if got, ok := tab[ino]; !ok || got.String() != c.LocalAddr().String()+"/udp" || got.Proto != UDP {
			t.Errorf("inode %d is %v (%v), want %s/udp", ino, got, ok, c.LocalAddr())
		}
	}
	for name, ino := range map[string]uint64{"connected": connected, "shut down for reading": loggerIno} {
		if l, ok := tab[ino]; ok {
			t.Errorf("%s UDP socket listed as a listener: %v", name, l)
		}
	}
	both, err := Listening(TCP | UDP)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := Listening(TCP)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := both[ino4]; !ok {
		t.Errorf("TCP|UDP misses the UDP listener")
	}
	if l, ok := tcp[ino4]; ok {
		t.Errorf("TCP lists a UDP socket: %v", l)
	}
	if held, err := Held(int32(os.Getpid()), tab); err != nil || !slices.Contains(held, ino4) || slices.Contains(held, loggerIno) {
		t.Errorf("held: %v %v", held, err)
	}
}

// TestIncompleteWithoutSockDiag: when sock_diag cannot be asked, TCP
// comes from /proc/net and UDP is reported missing, with the TCP table.
func TestIncompleteWithoutSockDiag(t *testing.T) {
	l, ino := listen(t, "tcp4", "127.0.0.1:0")
	_, uino := listenUDP(t, "udp4", "127.0.0.1:0")
	cause := errors.New("setns: operation not permitted")
	tab, err := complete(nil, cause, "self", TCP|UDP)
	var inc *IncompleteError
	if !errors.As(err, &inc) || inc.Missing != UDP || !errors.Is(err, cause) {
		t.Fatalf("err %v, want an IncompleteError for UDP wrapping the cause", err)
	}
	if tab[ino].String() != l.Addr().String() {
		t.Errorf("TCP listener %d: %v", ino, tab[ino])
	}
	if _, ok := tab[uino]; ok {
		t.Errorf("UDP listed from /proc/net, which cannot tell a log sender from a listener")
	}
	if tab, err := complete(nil, cause, "self", TCP); err != nil || tab[ino].String() != l.Addr().String() {
		t.Errorf("TCP only: %v %v", tab[ino], err)
	}
	// sock_diag that answered TCP but not UDP: its table is kept.
	partial := Table{1: {Proto: TCP}}
	if tab, err := complete(partial, &IncompleteError{Missing: UDP, Err: cause}, "self", TCP|UDP); len(tab) != 1 || !errors.As(err, &inc) {
		t.Errorf("partial sock_diag: %v %v", tab, err)
	}
}

// BenchmarkHeldEveryProcess is the walk a probe or a sweep makes: every
// process's /proc/PID/fd against the host's listening TCP sockets.
func BenchmarkHeldEveryProcess(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	tab, err := Listening(TCP)
	if err != nil || len(tab) == 0 {
		b.Fatalf("%v %d sockets", err, len(tab))
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var pids []int32
	for _, e := range ents {
		if p, err := strconv.ParseInt(e.Name(), 10, 32); err == nil {
			pids = append(pids, int32(p))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, p := range pids {
			_, _ = Held(p, tab)
		}
	}
	b.ReportMetric(float64(len(pids)), "processes")
}
