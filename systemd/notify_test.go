package systemd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listenNotify binds a unixgram socket and points $NOTIFY_SOCKET at it.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func readMsg(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read notify message: %v", err)
	}
	return string(buf[:n])
}

func TestNotifierMessages(t *testing.T) {
	c := listenNotify(t)
	n := NewNotifier()
	steps := []struct {
		call func() error
		want string
	}{
		{n.Ready, "READY=1"},
		{n.Reloading, "RELOADING=1\nMONOTONIC_USEC="},
		{n.Stopping, "STOPPING=1"},
		{func() error { return n.Status("sweeping") }, "STATUS=sweeping"},
	}
	for _, s := range steps {
		if err := s.call(); err != nil {
			t.Fatal(err)
		}
		if got := readMsg(t, c); !strings.HasPrefix(got, s.want) {
			t.Fatalf("got %q, want prefix %q", got, s.want)
		}
	}
}

func TestNotifierOutsideSystemdIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := NewNotifier()
	if err := n.Ready(); err != nil {
		t.Fatalf("Ready outside systemd: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.RunWatchdog(ctx, nil); err != nil {
		t.Fatalf("RunWatchdog without a watchdog: %v", err)
	}
}

func TestRunWatchdogPings(t *testing.T) {
	c := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := NewNotifier()
	if d, err := n.WatchdogInterval(); err != nil || d != 10*time.Millisecond {
		t.Fatalf("interval %v, %v", d, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.RunWatchdog(ctx, nil) }()
	for range 3 {
		if got := readMsg(t, c); got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRunWatchdogSkipsWhenUnhealthy(t *testing.T) {
	n := &Notifier{
		send: func(bool, string) (bool, error) { return false, errors.New("must not ping") },
		watchdog: func(bool) (time.Duration, error) {
			return 2 * time.Millisecond, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	asked := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- n.RunWatchdog(ctx, func(context.Context) bool {
			select {
			case asked <- struct{}{}:
			default:
			}
			return false
		})
	}()
	<-asked
	<-asked
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("pinged while unhealthy: %v", err)
	}
}

// A check that hangs is cut at the tick, a quarter of the watchdog
// period, so a hung or slow answer cannot hold the next ping past the
// period; the next check that passes pings.
func TestRunWatchdogBoundsTheCheck(t *testing.T) {
	pinged := make(chan string, 1)
	n := &Notifier{
		send: func(_ bool, state string) (bool, error) {
			select {
			case pinged <- state:
			default:
			}
			return true, nil
		},
		watchdog: func(bool) (time.Duration, error) { return 400 * time.Millisecond, nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var left time.Duration
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- n.RunWatchdog(ctx, func(cctx context.Context) bool {
			if calls++; calls > 1 {
				return true
			}
			dl, ok := cctx.Deadline()
			if !ok {
				return true // unbounded: left stays 0 and the test fails
			}
			left = time.Until(dl)
			<-cctx.Done() // a hung answer
			return false
		})
	}()
	if got := <-pinged; got != "WATCHDOG=1" {
		t.Fatalf("got %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls < 2 || left <= 0 || left > 100*time.Millisecond {
		t.Fatalf("calls %d, the hung check had %s left, want a bound of at most the 100 ms tick", calls, left)
	}
}
