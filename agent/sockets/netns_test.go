package sockets

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/haguard/haguard/agent/netns"
	"github.com/haguard/haguard/internal/testbed"
)

// socketsIn opens a TCP listener and a bound UDP socket inside pid's
// network namespace (the sockets belong to the namespace they are created
// in; this process holds them) and returns their inodes.
func socketsIn(t *testing.T, pid int32) (tcp, udp uint64) {
	t.Helper()
	var l net.Listener
	var u net.PacketConn
	if err := netns.Do(pid, func() error {
		var err error
		if l, err = net.Listen("tcp4", "0.0.0.0:0"); err != nil { // lo is down there: a wildcard binds
			return err
		}
		u, err = net.ListenPacket("udp6", "[::]:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); u.Close() })
	return inodeOf(t, l.(*net.TCPListener)), inodeOf(t, u.(*net.UDPConn))
}

// TestListeningInAnotherNamespace: the TCP and UDP listeners of another
// network namespace are listed by ListeningIn (sock_diag from inside it)
// and not by Listening (ours).
func TestListeningInAnotherNamespace(t *testing.T) {
	testbed.Require(t, testbed.TierSystem) // root: unshare, setns
	pid := testbed.ProcessInNewNetns(t)
	tcp, udp := socketsIn(t, pid)
	in, err := ListeningIn(pid, TCP|UDP)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := in[tcp]; !ok || l.Proto != TCP || !l.Addr().IsUnspecified() {
		t.Errorf("tcp listener %d: %v %v", tcp, l, ok)
	}
	if l, ok := in[udp]; !ok || l.Proto != UDP || !strings.HasSuffix(l.String(), "/udp") {
		t.Errorf("udp listener %d: %v %v", udp, l, ok)
	}
	own, err := Listening(TCP | UDP)
	if err != nil {
		t.Fatal(err)
	}
	for _, ino := range []uint64{tcp, udp} {
		if l, ok := own[ino]; ok {
			t.Errorf("our namespace lists %v, which is in another one", l)
		}
	}
	if held, err := Held(int32(os.Getpid()), in); err != nil || !slices.Contains(held, tcp) || !slices.Contains(held, udp) {
		t.Errorf("held: %v %v", held, err)
	}
}

// TestListeningInWithoutPrivilege runs this test binary again without
// CAP_SYS_ADMIN (as deploy/haguard.service runs): it cannot enter the
// namespace, so TCP comes from /proc/PID/net and UDP is reported unknown.
func TestListeningInWithoutPrivilege(t *testing.T) {
	if target := os.Getenv("HAGUARD_SOCKETS_TARGET"); target != "" {
		var pid int32
		var tcp, udp uint64
		fmt.Sscan(target, &pid, &tcp, &udp)
		tab, err := ListeningIn(pid, TCP|UDP)
		var inc *IncompleteError
		switch {
		case !errors.As(err, &inc) || inc.Missing != UDP || !errors.Is(err, netns.ErrNotPermitted):
			fmt.Println("err:", err)
		case tab[tcp].Proto != TCP:
			fmt.Println("tcp listener missing:", tab)
		case tab[udp].Proto != 0:
			fmt.Println("udp listed:", tab[udp])
		default:
			fmt.Println("fallback ok:", err)
		}
		os.Exit(0)
	}
	testbed.Require(t, testbed.TierSystem)
	pid := testbed.ProcessInNewNetns(t)
	tcp, udp := socketsIn(t, pid)
	cmd := exec.Command("setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--", os.Args[0], "-test.run=^TestListeningInWithoutPrivilege$")
	cmd.Env = append(os.Environ(), "HAGUARD_SOCKETS_TARGET="+strconv.Itoa(int(pid))+" "+strconv.FormatUint(tcp, 10)+" "+strconv.FormatUint(udp, 10))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fallback ok:") {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%s", out)
}
