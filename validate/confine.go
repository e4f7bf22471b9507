package validate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haguard/haguard/config"
)

// The bounds of `haproxy -c` when the caller names none (haguard.yaml
// haproxy.check_timeout, check_memory_max, check_user).
const (
	DefaultCheckTimeout = config.DefaultCheckTimeout
	DefaultCheckMemory  = int64(config.DefaultCheckMemory)
	DefaultCheckUser    = config.DefaultCheckUser
)

// untrustedPath is the whole environment of an untrusted check: none of
// haguard's own variables (a token file's path, credentials) reaches it.
const untrustedPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// memWrap runs the command under an address-space bound. The limit is set
// by the shell that then becomes haproxy (exec), so it holds from
// haproxy's first instruction on: an rlimit set from outside after the
// start (prlimit) would leave a window, and Go cannot set one between
// fork and exec. /bin/sh is on every host haproxy runs on; `ulimit -v` is
// in KiB.
const memWrap = `ulimit -v "$1" 2>/dev/null || { echo "haguard: cannot set the memory bound (ulimit -v $1)" >&2; exit 125; }; shift; exec "$@"`

const memWrapFailed = "haguard: cannot set the memory bound"

// confined is one prepared run of `haproxy -c`.
type confined struct {
	o     SyntaxOptions
	args  []string   // haproxy's arguments
	extra []*os.File // inherited as fd 3, 4, ... (untrusted inputs)
}

// credential resolves the user and groups an untrusted check runs as.
func (o SyntaxOptions) credential() (*syscall.Credential, error) {
	name := o.User
	if name == "" {
		name = DefaultCheckUser
	}
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, fmt.Errorf("check user %q: %w", name, err)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("check user %q: uid %q gid %q", name, u.Uid, u.Gid)
	}
	if uid == 0 || gid == 0 {
		return nil, fmt.Errorf("check user %q is root: an untrusted check must not run with root's powers", name)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	for _, gname := range o.Groups {
		g, err := user.LookupGroup(gname)
		if err != nil {
			if g, err = user.LookupGroupId(gname); err != nil {
				return nil, fmt.Errorf("check group %q: %w", gname, err)
			}
		}
		id, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("check group %q: gid %q is not allowed", gname, g.Gid)
		}
		cred.Groups = append(cred.Groups, uint32(id))
	}
	return cred, nil
}

// sealedFile holds data in an anonymous, sealed memory file that an
// unprivileged haproxy opens as /proc/self/fd/N: the candidate never has
// to be written where the check user could read (or change) it, and a
// memfd's inode is open to its holder whoever created it.
func sealedFile(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("haguard-"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd for %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd for %s: %w", name, err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal memfd for %s: %w", name, err)
	}
	return f, nil
}

// run starts haproxy under the bounds and waits for it. The error is
// non-nil only when it could not run at all or ctx ended; a timeout is a
// failed check (TimedOut).
func (c *confined) run(ctx context.Context) (SyntaxResult, error) {
	o := c.o
	res := SyntaxResult{}
	if _, err := exec.LookPath(o.Bin); err != nil {
		return res, fmt.Errorf("run %s: %w", o.Bin, err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	mem := o.MemoryLimit
	if mem == 0 {
		mem = DefaultCheckMemory
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := append([]string{o.Bin}, c.args...)
	if mem > 0 {
		argv = append([]string{"/bin/sh", "-c", memWrap, "haguard-check", strconv.FormatInt(max(mem/1024, 1), 10)}, argv...)
	}
	cmd := exec.CommandContext(rctx, argv[0], argv[1:]...)
	// The output goes through a pipe of ours, not os/exec's copier: Wait
	// then returns when haproxy exits, even if something it started still
	// holds the pipe, and what is kept is bounded.
	pr, pw, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("haproxy -c: %w", err)
	}
	defer pr.Close()
	buf := &boundedBuffer{max: maxOutputBytes}
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(buf, pr); close(copied) }()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.ExtraFiles = c.extra
	// Its own process group, killed as a whole on timeout and after the
	// run (what Lua or a helper may have left behind), and SIGKILL if
	// haguard dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if o.Env != nil && !o.Untrusted {
		cmd.Env = make([]string, 0, len(o.Env))
		for k, v := range o.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		sort.Strings(cmd.Env)
	}
	if o.Untrusted {
		cred, err := o.credential()
		if err != nil {
			return res, err
		}
		// A new uid drops every capability at exec (no SECBIT_KEEP_CAPS);
		// no ambient ones are asked for.
		cmd.SysProcAttr.Credential = cred
		cmd.SysProcAttr.AmbientCaps = nil
		cmd.Env = []string{untrustedPath}
		cmd.Dir = o.WorkDir
		if cmd.Dir == "" {
			cmd.Dir = "/"
		}
	}
	start := time.Now()
	err = startAndWait(cmd, o.Untrusted, func() { pw.Close() })
	res.DurationMS = time.Since(start).Milliseconds()
	if cmd.Process != nil {
		// Nothing of the group outlives the check. (The group's id is
		// haproxy's pid, just reaped: Linux hands out pids in a cycle, so
		// no new group takes that id in this instant.)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-copied:
	case <-time.After(2 * time.Second): // a writer escaped the group
	}
	res.Output = buf.String()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSSKB = ru.Maxrss
		}
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("haproxy -c: %w", ctx.Err())
	case rctx.Err() != nil:
		res.TimedOut = true
		res.Output += fmt.Sprintf("haguard: haproxy -c did not finish within %s (haproxy.check_timeout): its process group was killed and the candidate is refused\n", timeout)
		return res, nil
	case err == nil:
		res.OK = true
	case errors.As(err, &exitErr):
		if res.ExitCode == 125 && strings.Contains(res.Output, memWrapFailed) {
			return res, fmt.Errorf("haproxy -c: %s", strings.TrimSpace(res.Output))
		}
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() && mem > 0 {
			res.OutOfMemory = true
			res.Output += fmt.Sprintf("haguard: haproxy -c was killed by %s; it ran under a memory bound of %d MiB (haproxy.check_memory_max)\n", ws.Signal(), mem>>20)
		} else if mem > 0 && (memoryExhausted(res.Output) || res.MaxRSSKB*1024 >= mem*9/10) {
			// haproxy does not always say so: an allocation that fails
			// while an ACL file is read ends as a parse error whose
			// message could not be allocated ("(null)"); a peak at the
			// bound tells.
			res.OutOfMemory = true
			res.Output += fmt.Sprintf("haguard: haproxy -c ran out of memory under its bound of %d MiB (haproxy.check_memory_max)\n", mem>>20)
		}
	default:
		return res, fmt.Errorf("run %s: %w", o.Bin, err)
	}
	return res, nil
}

// memoryExhausted recognises haproxy's words for a failed allocation.
func memoryExhausted(out string) bool {
	l := strings.ToLower(out)
	return strings.Contains(l, "out of memory") || strings.Contains(l, "cannot allocate memory") || strings.Contains(l, "failed to allocate")
}

// maxOutputBytes bounds what a check's output may hold (Lua can print
// without end); the rest is counted and dropped.
const maxOutputBytes = 1 << 20

// boundedBuffer keeps the first max bytes written to it.
type boundedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	max     int
	dropped int64
}

// Write keeps what fits and reports everything written, so that the
// copy goes on draining the pipe (a blocked writer would hang the check).
func (w *boundedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := p
	if room := max(w.max-w.b.Len(), 0); room < len(p) {
		keep = p[:room]
		w.dropped += int64(len(p) - room)
	}
	w.b.Write(keep)
	return len(p), nil
}

func (w *boundedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.b.String()
	if w.dropped > 0 {
		s += fmt.Sprintf("\nhaguard: %d more bytes of output dropped\n", w.dropped)
	}
	return s
}

// startAndWait starts cmd and waits for it on one locked OS thread: the
// child's parent-death signal is tied to the thread that forked it, so
// that thread must live as long as the child. For an untrusted check the
// thread first sets no_new_privs, which the child inherits (no setuid
// binary can give it privileges back); the thread is never unlocked, so
// it ends with the goroutine and no other goroutine runs with that flag.
func startAndWait(cmd *exec.Cmd, noNewPrivs bool, started func()) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if noNewPrivs {
			if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
				started()
				done <- fmt.Errorf("set no_new_privs for haproxy -c: %w", err)
				return
			}
		} else {
			defer runtime.UnlockOSThread()
		}
		err := cmd.Start()
		started()
		if err != nil {
			done <- err
			return
		}
		done <- cmd.Wait()
	}()
	return <-done
}
