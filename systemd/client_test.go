package systemd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

func TestWaitJobResults(t *testing.T) {
	for _, tc := range []struct {
		result  string
		wantErr bool
	}{
		{"done", false},
		{"failed", true},
		{"canceled", true},
		{"timeout", true},
		{"dependency", true},
		{"skipped", true},
	} {
		t.Run(tc.result, func(t *testing.T) {
			err := waitJob(context.Background(), "haproxy.service", "reload", func(ch chan<- string) (int, error) {
				ch <- tc.result // the dispatcher's write: must not block
				return 7, nil
			})
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			var je *JobError
			if !errors.As(err, &je) {
				t.Fatalf("got %v (%T), want *JobError", err, err)
			}
			if je.Unit != "haproxy.service" || je.Result != tc.result || je.Job != "reload" {
				t.Fatalf("got %+v", je)
			}
		})
	}
}

func TestWaitJobStartError(t *testing.T) {
	boom := errors.New("access denied")
	err := waitJob(context.Background(), "u.service", "restart", func(chan<- string) (int, error) { return 0, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want wrapped %v", err, boom)
	}
	var je *JobError
	if errors.As(err, &je) {
		t.Fatalf("a failed call is not a job result: %v", err)
	}
}

// When the caller stops waiting, the dispatcher's later write must still
// go through: the channel is buffered to one.
func TestWaitJobCanceledLeavesChannelWritable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var jobCh chan<- string
	err := waitJob(ctx, "u.service", "reload", func(ch chan<- string) (int, error) {
		jobCh = ch
		cancel()
		return 1, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	select {
	case jobCh <- "done":
	default:
		t.Fatal("a late job result would block go-systemd's dispatcher")
	}
}

// TestDialAddress runs a private dbus-daemon and connects to it by address:
// EXTERNAL auth and Hello succeed; reading a unit fails with a wrapped
// error because no systemd owns org.freedesktop.systemd1 on that bus.
func TestDialAddress(t *testing.T) {
	sock := privateBus(t)
	dir := filepath.Dir(sock)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, "unix:path="+sock)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	_, err = c.Unit(ctx, "haproxy.service")
	if err == nil || !strings.Contains(err.Error(), "read unit haproxy.service") {
		t.Fatalf("Unit on a bus without systemd: got %v", err)
	}
	if _, err := c.State(ctx, "haproxy.service"); err == nil || !strings.Contains(err.Error(), "read unit haproxy.service") {
		t.Fatalf("State on a bus without systemd: got %v", err)
	}
	if err := c.Reload(ctx, "haproxy.service"); err == nil || !strings.HasPrefix(err.Error(), "reload haproxy.service: ") {
		t.Fatalf("Reload on a bus without systemd: got %v", err)
	}

	if _, err := Dial(ctx, "unix:path="+filepath.Join(dir, "nobody")); err == nil {
		t.Fatal("Dial to a missing socket succeeded")
	}
	_ = os.Remove(sock)
}

// privateBus runs a dbus-daemon of its own for t and returns its socket.
func privateBus(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs dbus-daemon")
	}
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("dbus-daemon not in PATH (Debian package dbus): %v", err)
	}
	sock := filepath.Join(t.TempDir(), "bus")
	cmd := exec.Command(bin, "--session", "--nofork", "--nopidfile", "--print-address",
		"--address=unix:path="+sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon printed no address: %v", err)
	}
	if !strings.HasPrefix(line, "unix:path="+sock) {
		t.Fatalf("dbus-daemon address %q", line)
	}
	return sock
}

// oldManager is the Manager of a systemd older than 230 (RHEL 7's 219):
// it has no ListUnitsByNames.
type oldManager struct{}

func (oldManager) GetUnit(name string) (dbus.ObjectPath, *dbus.Error) {
	return dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + strings.ReplaceAll(name, ".", "_2e")), nil
}

// TestStateWithoutListUnitsByNames: State reads the three states as
// properties from a systemd that lacks ListUnitsByNames, played on a
// private bus by an object with the unit's properties.
func TestStateWithoutListUnitsByNames(t *testing.T) {
	sock := privateBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sd, err := authHello(dbus.Dial("unix:path="+sock, dbus.WithContext(ctx)))
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if err := sd.Export(oldManager{}, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	if _, err := prop.Export(sd, "/org/freedesktop/systemd1/unit/haproxy_2eservice", prop.Map{
		"org.freedesktop.systemd1.Unit": {
			"LoadState":   {Value: "loaded"},
			"ActiveState": {Value: "reloading"},
			"SubState":    {Value: "reload"},
		},
		"org.freedesktop.systemd1.Service": {
			"MainPID":      {Value: uint32(4242)},
			"ControlPID":   {Value: uint32(4343)},
			"ControlGroup": {Value: "/system.slice/haproxy.service"},
			"StatusText":   {Value: "Ready."},
		},
	}); err != nil {
		t.Fatal(err)
	}
	if reply, err := sd.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.systemd1: %v %v", reply, err)
	}

	c, err := Dial(ctx, "unix:path="+sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, err := c.State(ctx, "haproxy.service")
	want := Unit{Name: "haproxy.service", LoadState: "loaded", ActiveState: "reloading", SubState: "reload",
		MainPID: 4242, ControlPID: 4343, ControlGroup: "/system.slice/haproxy.service", StatusText: "Ready."}
	if err != nil || fmt.Sprint(u) != fmt.Sprint(want) {
		t.Fatalf("State: %+v, %v\nwant %+v", u, err, want)
	}
}
