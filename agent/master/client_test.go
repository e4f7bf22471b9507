package master

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeMaster answers each connection's one command with answers[cmd] and
// closes, like the master CLI in non-interactive mode.
func fakeMaster(t *testing.T, answers map[string]string) string {
	return fakeMasterFunc(t, func(c net.Conn, cmd string) {
		ans, ok := answers[cmd]
		if !ok {
			ans = "Unknown command, but maybe one of the following ones is a better match:\n  show proc : show processes status\n"
		}
		_, _ = c.Write([]byte(ans))
	})
}

// fakeMasterFunc serves each connection in its own goroutine: it reads
// one command line, calls serve with it (trimmed), and closes. It
// returns the socket's path.
func fakeMasterFunc(t *testing.T, serve func(c net.Conn, cmd string)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				cmd, _ := bufio.NewReader(c).ReadString('\n')
				serve(c, strings.TrimSpace(cmd))
			})
		}
	})
	return path
}

func TestClientAgainstFakeMaster(t *testing.T) {
	ctx := context.Background()
	t.Run("2.6", func(t *testing.T) {
		c := New(fakeMaster(t, map[string]string{
			"show proc": "#<PID> <type> <reloads> <uptime> <version>\n10 master 1 [failed: 0] 0d00h00m05s 2.6.12\n# workers\n12 worker 0 0d00h00m01s 2.6.12\n# programs\n\n",
			"reload":    "",
		}))
		sp, err := c.ShowProc(ctx)
		if err != nil || sp.Master.PID != 10 || len(sp.Workers) != 1 || sp.Workers[0].Generation != 1 {
			t.Fatalf("ShowProc: %+v, %v", sp, err)
		}
		r, err := c.Reload(ctx)
		if err != nil || r.Reported {
			t.Fatalf("2.6 reload answers nothing: got %+v, %v", r, err)
		}
		if _, err := c.StartupLogs(ctx); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("StartupLogs on 2.6: got %v, want ErrUnsupported", err)
		}
	})
	t.Run("3.x", func(t *testing.T) {
		c := New(fakeMaster(t, map[string]string{
			"reload":            "Success=0\n--\n[NOTICE]   (1) : haproxy version is 3.2.4\n[ALERT]    (1) : config : parsing [/etc/haproxy/haproxy.cfg:12] : unknown keyword 'bnd'\n",
			"show startup-logs": "[NOTICE]   (1) : haproxy version is 3.2.4\n",
		}))
		r, err := c.Reload(ctx)
		if err != nil || !r.Reported || r.Success || !strings.Contains(r.Log, "unknown keyword 'bnd'") || strings.HasPrefix(r.Log, "--") {
			t.Fatalf("Reload: %+v, %v", r, err)
		}
		logs, err := c.StartupLogs(ctx)
		if err != nil || !strings.Contains(logs, "haproxy version is 3.2.4") {
			t.Fatalf("StartupLogs: %q, %v", logs, err)
		}
		if _, err := c.ShowProc(ctx); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("unknown show proc: %v", err)
		}
	})
}

func TestParseReload(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ReloadResult
		err  string
	}{
		{"", ReloadResult{}, ""},
		{"Success=1\n", ReloadResult{Reported: true, Success: true}, ""},
		{"Success=1\n--\nline1\nline2\n", ReloadResult{Reported: true, Success: true, Log: "line1\nline2"}, ""},
		{"Success=0\n--\nAnother reload is still in progress.\n", ReloadResult{Reported: true, Log: "Another reload is still in progress."}, ""},
		{"Permission denied\n", ReloadResult{}, "unexpected answer"},
	} {
		got, err := ParseReload(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("%q: got %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Fatalf("%q: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// The answers of real 2.8.0, 3.0.0 and 3.2.0 masters to `reload`
// (testdata/README.md), and their `show startup-logs` after a failed one.
func TestParseReloadCaptures(t *testing.T) {
	for _, tc := range []struct {
		file    string
		success bool
		log     string
	}{
		{"2.8.0-reload-ok.txt", true, "Loading success."},
		{"3.0.0-reload-ok.txt", true, "New worker (22945) forked"},
		{"3.0.0-reload-failed.txt", false, "cannot bind socket (Cannot assign requested address) for [192.0.2.1:18540]"},
		{"3.2.0-reload-ok.txt", true, "Initializing new worker (21767)"},
		{"3.2.0-reload-failed.txt", false, "Failed to load worker!"},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseReload(string(b))
		if err != nil || !r.Reported || r.Success != tc.success || !strings.Contains(r.Log, tc.log) || strings.HasPrefix(r.Log, "--") {
			t.Errorf("%s: %+v, %v; want success=%v and a log with %q", tc.file, r, err, tc.success, tc.log)
		}
		if !tc.success {
			logs, err := os.ReadFile(filepath.Join("testdata", strings.Replace(tc.file, "reload-failed", "startup-logs-failed", 1)))
			if err != nil || !strings.Contains(string(logs), tc.log) {
				t.Errorf("%s: show startup-logs lacks %q (%v)", tc.file, tc.log, err)
			}
		}
	}
}

func TestClientErrors(t *testing.T) {
	c := New(filepath.Join(t.TempDir(), "absent.sock"))
	if _, err := c.ShowProc(context.Background()); err == nil || !strings.Contains(err.Error(), "absent.sock") {
		t.Fatalf("missing socket: %v", err)
	}

	// A master that never answers: the context bounds the wait.
	path := filepath.Join(t.TempDir(), "mute.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			held <- c
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-held; cancel() }()
	_, err = New(path).Command(ctx, "show proc")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled command: got %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			<-ctx2.Done()
		}
	}()
	if _, err := New(path).Command(ctx2, "show proc"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed out command: got %v", err)
	}
}

// A send or a read cut by the context reads as the context's error,
// whichever step it hit (the socket's deadline is set in the past on
// cancel, so the raw error is an i/o timeout).
func TestCtxErr(t *testing.T) {
	timeout := fmt.Errorf("write unix: %w", os.ErrDeadlineExceeded)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	other := errors.New("broken pipe")
	for _, c := range []struct {
		ctx      context.Context
		in, want error
	}{
		{canceled, timeout, context.Canceled},
		{canceled, other, context.Canceled},
		{context.Background(), timeout, context.DeadlineExceeded},
		{context.Background(), other, other},
	} {
		if got := ctxErr(c.ctx, c.in); got != c.want {
			t.Errorf("ctxErr(%v, %v) = %v, want %v", c.ctx.Err(), c.in, got, c.want)
		}
	}
}

// A worker relay that stays silent costs AtWorker's limit, not the
// caller's budget; the master's relay errors end the answer at once,
// even when the master keeps the connection open after them.
func TestAtWorker(t *testing.T) {
	path := fakeMasterFunc(t, func(c net.Conn, cmd string) {
		switch cmd {
		case "@!12 show sess":
			_, _ = c.Write([]byte("0x1: proto=tcpv4\n"))
		case "@!13 show sess":
			// 3.0 may keep the connection open after it.
			_, _ = c.Write([]byte("Can't find the target PID matching the prefix '@!13'\n"))
			time.Sleep(2 * time.Second)
		case "@!16 show sess": // a big answer, in pieces
			for range 50 {
				_, _ = c.Write([]byte(strings.Repeat("0x2: proto=tcpv4 src=127.0.0.1\n", 128)))
			}
		case "@!15 show sess":
			_, _ = c.Write([]byte("Can't connect to the target CLI!\n"))
		default: // @!14: the relay to a dead worker, silent
			time.Sleep(2 * time.Second)
		}
	})
	c := New(path)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := AtWorker(ctx, c, 12, "show sess", 0); err != nil || !strings.HasPrefix(out, "0x1:") {
		t.Errorf("live worker: %q %v", out, err)
	}
	start := time.Now()
	if _, err := AtWorker(ctx, c, 13, "show sess", 0); err == nil || !strings.Contains(err.Error(), "worker 13: Can't find") || time.Since(start) > time.Second {
		t.Errorf("unknown pid: %v after %s, want the master's answer without waiting for its EOF", err, time.Since(start))
	}
	if out, err := AtWorker(ctx, c, 16, "show sess", 0); err != nil || len(out) != 50*128*31 {
		t.Errorf("big answer: %d bytes, %v", len(out), err)
	}
	if _, err := AtWorker(ctx, c, 15, "show sess", 0); err == nil || !strings.Contains(err.Error(), "worker 15: Can't connect to the target CLI!") {
		t.Errorf("unreachable worker: %v", err)
	}
	start = time.Now()
	_, err := AtWorker(ctx, c, 14, "show sess", 100*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "worker 14 did not answer") || time.Since(start) > time.Second {
		t.Errorf("silent worker: %v after %s", err, time.Since(start))
	}
	if ctx.Err() != nil {
		t.Error("the caller's budget was spent")
	}
}
