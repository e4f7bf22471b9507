package netns_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/netns"
	"github.com/haguard/haguard/internal/testbed"
)

const keepalive = "/proc/sys/net/ipv4/tcp_keepalive_time"

func readSysctl(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(keepalive)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// setSysctl sets tcp_keepalive_time in pid's namespace with the real
// sysctl(8), through nsenter: independent of the code under test.
func setSysctl(t *testing.T, pid int32, v int) {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(int(pid)), "-n", "sysctl", "-w", "net.ipv4.tcp_keepalive_time="+strconv.Itoa(v)).CombinedOutput()
	if err != nil {
		t.Fatalf("sysctl in the new namespace: %v: %s", err, out)
	}
}

func TestOwnIsOfSelf(t *testing.T) {
	own, err := netns.Own()
	if err != nil || own == 0 {
		t.Fatalf("own: %v %v", own, err)
	}
	self, err := netns.Of(int32(os.Getpid()))
	if err != nil || self != own {
		t.Fatalf("of self: %v %v, own %v", self, err, own)
	}
	link, err := os.Readlink("/proc/self/ns/net")
	if err != nil || link != own.String() {
		t.Fatalf("String() %q, readlink %q (%v)", own.String(), link, err)
	}
	if _, err := netns.Of(-1); err == nil {
		t.Fatal("pid -1 has a namespace")
	}
}

// TestDoInOwnNamespaceNeedsNothing: a pid in our own namespace runs fn
// directly (no setns, so no privilege needed).
func TestDoInOwnNamespaceNeedsNothing(t *testing.T) {
	want := readSysctl(t)
	var got string
	if err := netns.Do(int32(os.Getpid()), func() error { got = readSysctl(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	sentinel := errors.New("fn failed")
	if err := netns.Do(int32(os.Getpid()), func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("fn's error lost: %v", err)
	}
}

// TestDoReadsTheTargetsSysctl is the measurement behind kernel facts: a
// net.* sysctl read from /proc/sys is the reader's namespace's, whatever
// procfs it goes through (/proc/PID/root/proc/sys included); read from a
// thread Do moved, it is the target's. Meanwhile, and after, every other
// goroutine still reads our own.
func TestDoReadsTheTargetsSysctl(t *testing.T) {
	testbed.Require(t, testbed.TierSystem) // root: unshare, setns
	pid := testbed.ProcessInNewNetns(t)
	own := readSysctl(t)
	v := 1000 + int(time.Now().UnixNano()%5000)
	if strconv.Itoa(v) == own {
		v++
	}
	setSysctl(t, pid, v)
	want := strconv.Itoa(v)

	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root%s", pid, keepalive)); err != nil || strings.TrimSpace(string(b)) != own {
		t.Fatalf("through /proc/PID/root: %q %v, want our own %s (the reader's namespace)", b, err, own)
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 100)
	for range 4 { // other goroutines keep reading while Do runs
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if b, err := os.ReadFile(keepalive); err != nil || strings.TrimSpace(string(b)) != own {
					errs <- fmt.Sprintf("another goroutine read %q (%v) during Do", b, err)
					return
				}
			}
		})
	}
	for range 50 {
		var got string
		if err := netns.Do(pid, func() error {
			b, err := os.ReadFile(keepalive)
			got = strings.TrimSpace(string(b))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("in the target namespace: %s, want %s", got, want)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := readSysctl(t); got != own {
		t.Fatalf("after Do: %s, want %s", got, own)
	}
	if ns, _ := netns.Own(); ns == 0 {
		t.Fatal("own namespace unreadable after Do")
	}
	if link, _ := os.Readlink("/proc/self/ns/net"); link != mustOwn(t).String() {
		t.Fatalf("the main thread was left in %s", link)
	}
}

func mustOwn(t *testing.T) netns.ID {
	t.Helper()
	id, err := netns.Own()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDoNotPermitted runs this test binary again without CAP_SYS_ADMIN
// (setpriv): setns then fails, and Do says so with ErrNotPermitted, as
// it does under deploy/haguard.service's capability set.
func TestDoNotPermitted(t *testing.T) {
	if pid := os.Getenv("HAGUARD_NETNS_TARGET"); pid != "" {
		n, _ := strconv.Atoi(pid)
		err := netns.Do(int32(n), func() error { return nil })
		if !errors.Is(err, netns.ErrNotPermitted) {
			fmt.Printf("got %v\n", err)
			os.Exit(3)
		}
		fmt.Println("refused:", err)
		os.Exit(0)
	}
	testbed.Require(t, testbed.TierSystem)
	pid := testbed.ProcessInNewNetns(t)
	cmd := exec.Command("setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--", os.Args[0], "-test.run=^TestDoNotPermitted$")
	cmd.Env = append(os.Environ(), "HAGUARD_NETNS_TARGET="+strconv.Itoa(int(pid)))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "refused:") {
		t.Fatalf("without CAP_SYS_ADMIN: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// BenchmarkDo is the cost of reading one sysctl in another network
// namespace (a locked thread, two setns) against reading it in ours
// (docs/benchmarks.md).
func BenchmarkDo(b *testing.B) {
	testbed.Require(b, testbed.TierSystem)
	cmd := exec.Command("unshare", "-n", "sleep", "600")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	own, _ := netns.Own()
	pid := int32(cmd.Process.Pid)
	for range 200 {
		if ns, err := netns.Of(pid); err == nil && ns != own {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	read := func() error { _, err := os.ReadFile(keepalive); return err }
	b.Run("own", func(b *testing.B) {
		for b.Loop() {
			if err := netns.Do(int32(os.Getpid()), read); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("other", func(b *testing.B) {
		for b.Loop() {
			if err := netns.Do(pid, read); err != nil {
				b.Fatal(err)
			}
		}
	})
}
