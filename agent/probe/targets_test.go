package probe

import (
	"context"
	"net"
	"os"
	"reflect"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestInferKind(t *testing.T) {
	cases := []struct {
		name string
		l    Listener
		want string
	}{
		{"mode http", Listener{Mode: "http", Binds: []string{":80"}}, KindHTTP},
		{"mode HTTP", Listener{Mode: "HTTP", Binds: []string{":80"}, ServerPorts: []int{3306}}, KindHTTP},
		{"mysql-check", Listener{Mode: "tcp", Binds: []string{":3307"}, MySQLCheck: true}, KindMySQL},
		{"bind 3306", Listener{Mode: "tcp", Binds: []string{"*:3306"}}, KindMySQL},
		{"servers on 3306", Listener{Binds: []string{":13306"}, ServerPorts: []int{9200, 3306}}, KindMySQL},
		{"httpchk on tcp stays by port", Listener{Mode: "tcp", Binds: []string{":3307"}, HTTPCheck: true, ServerPorts: []int{3306}}, KindMySQL},
		{"plain tcp", Listener{Mode: "tcp", Binds: []string{":6379"}, ServerPorts: []int{6379}}, KindTCP},
		{"empty mode", Listener{Binds: []string{":5432"}}, KindTCP},
	}
	for _, tc := range cases {
		if got := InferKind(tc.l); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestProbeAddress(t *testing.T) {
	cases := []struct {
		bind string
		addr string
		port int
		ok   bool
	}{
		{"*:3307", "127.0.0.1:3307", 3307, true},
		{":80", "127.0.0.1:80", 80, true},
		{"0.0.0.0:443", "127.0.0.1:443", 443, true},
		{"10.0.0.5:3306", "10.0.0.5:3306", 3306, true},
		{"[::]:8080", "[::1]:8080", 8080, true},
		{":::8080", "[::1]:8080", 8080, true},
		{"ipv4@127.0.0.2:9000", "127.0.0.2:9000", 9000, true},
		{"127.0.0.1:1000-1005", "127.0.0.1:1000", 1000, true},
		{"/run/haproxy/x.sock", "", 0, false},
		{"unix@/run/x.sock", "", 0, false},
		{"abns@foo", "", 0, false},
		{"127.0.0.1", "", 0, false},
		{"127.0.0.1:0", "", 0, false},
	}
	for _, tc := range cases {
		addr, port, ok := ProbeAddress(tc.bind)
		if addr != tc.addr || port != tc.port || ok != tc.ok {
			t.Errorf("ProbeAddress(%q) = %q %d %v, want %q %d %v", tc.bind, addr, port, ok, tc.addr, tc.port, tc.ok)
		}
	}
}

func TestInferTargets(t *testing.T) {
	ls := []Listener{
		{Section: "galera", Mode: "tcp", Binds: []string{"*:3307", "127.0.0.1:3307"}, MySQLCheck: true},
		{Section: "web", Mode: "http", Binds: []string{":8080", "/run/web.sock"}},
		{Section: "redis", Mode: "tcp", Binds: []string{":6379"}},
	}
	got := InferTargets(ls, "")
	want := []Target{
		{Address: "127.0.0.1:3307", Kind: KindMySQL},
		{Address: "127.0.0.1:8080", Kind: KindHTTP},
		{Address: "127.0.0.1:6379", Kind: KindTCP},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	got = InferTargets(ls, KindIdleHold)
	overs := []string{KindMySQL, KindTCP, KindTCP}
	for i, tg := range got {
		if tg.Kind != KindIdleHold || tg.Over != overs[i] {
			t.Errorf("override: %+v, want idle-hold over %s", tg, overs[i])
		}
	}
}

func TestListenerCounter(t *testing.T) {
	socks := []Socket{
		{PID: 10, IP: "0.0.0.0", Port: 3307},
		{PID: 11, IP: "0.0.0.0", Port: 3307},
		{PID: 11, IP: "::", Port: 3307}, // same process, second socket
		{PID: 12, IP: "127.0.0.1", Port: 3307},
		{PID: 13, IP: "127.0.0.2", Port: 3307},
		{PID: 14, IP: "0.0.0.0", Port: 80},
	}
	count := ListenerCounter(socks)
	cases := map[string]int{"127.0.0.1:3307": 3, "127.0.0.2:3307": 3, "127.0.0.1:80": 1, "127.0.0.1:81": 0, "bogus": 0}
	for addr, want := range cases {
		if got := count(addr); got != want {
			t.Errorf("count(%q) = %d, want %d", addr, got, want)
		}
	}
}

// TestListenSocketsSeesReusePort: two sockets on one address (as with
// SO_REUSEPORT) are two entries, and this process is found holding them.
func TestListenSocketsSeesReusePort(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	a, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := lc.Listen(context.Background(), "tcp4", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	socks, err := ListenSockets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(a.Addr().(*net.TCPAddr).Port)
	n := 0
	for _, s := range socks {
		if s.Port == port {
			n++
			if s.PID != int32(os.Getpid()) || s.IP != "127.0.0.1" {
				t.Errorf("socket %+v, want pid %d", s, os.Getpid())
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d sockets on port %d, want 2", n, port)
	}
	if c := ListenerCounter(socks)(a.Addr().String()); c != 1 {
		t.Errorf("one process holding both: count %d, want 1", c)
	}
}
