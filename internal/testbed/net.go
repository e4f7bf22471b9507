package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Greeting is what TCPBackend sends first on every connection.
const Greeting = "hello\n"

// TCPBackend starts a loopback TCP server for t that greets every
// connection with Greeting and then echoes what it reads. It returns its
// address ("127.0.0.1:port"); it stops when t ends.
func TCPBackend(t testing.TB) string {
	t.Helper()
	addr, stop, err := ListenTCPBackend()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(stop)
	return addr
}

// ListenTCPBackend is TCPBackend without a testing.TB; call stop when done.
// stop closes the listener and every open connection and waits for the
// goroutines to end.
func ListenTCPBackend() (addr string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("tcp backend: %w", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				if _, err := io.WriteString(c, Greeting); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	stop = func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	return l.Addr().String(), stop, nil
}

// DeadAddr returns a loopback address where nothing listens: the port is
// bound (so nobody else gets it) but not listening, so connecting to it is
// refused at once. It is released when t ends.
func DeadAddr(t testing.TB) string {
	t.Helper()
	addr, release, err := ReserveDeadAddr()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(release)
	return addr
}

// ReserveDeadAddr is DeadAddr without a testing.TB.
func ReserveDeadAddr() (addr string, release func(), err error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("dead addr: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return "", nil, fmt.Errorf("dead addr: bind: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return "", nil, fmt.Errorf("dead addr: %w", err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), func() { syscall.Close(fd) }, nil
}

// ConnectLoop is the seeds' connect loop: n times, dial addr and read
// len(expect) bytes within a deadline; an attempt is ok when they equal
// expect. Attempts run one after the other; it stops early when ctx ends
// (the remaining attempts are not counted).
func ConnectLoop(ctx context.Context, addr string, n int, expect string) (ok, fail int) {
	for range n {
		if ctx.Err() != nil {
			return ok, fail
		}
		if err := Attempt(ctx, addr, expect); err != nil {
			fail++
		} else {
			ok++
		}
	}
	return ok, fail
}

// Attempt is one connect-loop attempt, with the reason when it fails.
func Attempt(ctx context.Context, addr, expect string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	buf := make([]byte, len(expect))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if string(buf) != expect {
		return fmt.Errorf("greeting %q, want %q", buf, expect)
	}
	return nil
}

// HoldConnection opens a long-lived client connection to addr (through the
// box's haproxy, to a TCPBackend or any server that speaks first, such as
// MariaDB) and reads the first line or 6 bytes of the greeting, so the connection
// is known to be established end to end and pinned to one worker: after a
// reload that worker stays as a draining "old worker". It is closed when t
// ends; the caller may close it earlier to let the old worker exit.
func (s *Sandbox) HoldConnection(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("testbed: hold connection to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, int64(len(Greeting)))).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) || line == "" {
		t.Fatalf("testbed: hold connection to %s: no greeting: %q %v", addr, line, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}
