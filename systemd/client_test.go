package systemd

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if testing.Short() {
		t.Skip("-short: needs dbus-daemon")
	}
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("dbus-daemon not in PATH (Debian package dbus): %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "bus")
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
