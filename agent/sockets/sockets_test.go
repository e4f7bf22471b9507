package sockets

import (
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
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
	want := Table{51234: netip.MustParseAddrPort("127.0.0.1:3307"), 61000: netip.MustParseAddrPort("[::]:8080")}
	if len(got) != len(want) || got[51234] != want[51234] || got[61000] != want[61000] {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestDecodeDiagMsg(t *testing.T) {
	msg := func(family, state byte, inode byte) []byte {
		d := make([]byte, sizeofDiagMsg)
		d[0], d[1] = family, state
		d[4], d[5] = 0x0c, 0xeb // port 3307, network order
		copy(d[8:], []byte{127, 0, 0, 1})
		d[68] = inode // little or big end: non-zero either way
		return d
	}
	if ino, addr, ok := decodeDiagMsg(msg(syscall.AF_INET, tcpListen, 7)); !ok || ino == 0 || addr.String() != "127.0.0.1:3307" {
		t.Fatalf("listen socket: %d %v %v", ino, addr, ok)
	}
	for name, d := range map[string][]byte{
		"established": msg(syscall.AF_INET, 1, 7),
		"no inode":    msg(syscall.AF_INET, tcpListen, 0),
		"unix family": msg(syscall.AF_UNIX, tcpListen, 7),
		"short":       msg(syscall.AF_INET, tcpListen, 7)[:sizeofDiagMsg-1],
	} {
		if _, _, ok := decodeDiagMsg(d); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

// listen opens a real TCP listener and returns it with its socket's inode
// (from fstat on its fd, independently of the code under test).
func listen(t *testing.T, network, addr string) (net.Listener, uint64) {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return l, st.Ino
}

// sources are the two readers of this namespace's LISTEN sockets, and
// the exported entry points.
var sources = map[string]func() (Table, error){
	"sock_diag":   dump,
	"/proc/net":   func() (Table, error) { return readProcNet("self") },
	"Listening":   Listening,
	"ListeningIn": func() (Table, error) { return ListeningIn(int32(os.Getpid())) },
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
	if tab, err := Listening(); err != nil || tab[ino] != netip.MustParseAddrPort(l.Addr().String()) {
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
	tab, err := Listening()
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
