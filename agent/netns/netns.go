// Package netns names network namespaces and runs code inside another
// process's one. The ghost sweep decides whether two listeners share
// traffic per namespace, reads the sockets of a namespace with netlink
// sock_diag (which answers only for the caller's namespace), and the
// kernel facts are the sysctls of haproxy's namespace (a net.* sysctl
// under /proc/sys is always the reader's, whatever procfs it is read
// through).
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// ID names a network namespace: the inode of its nsfs file, as in
// "net:[4026531840]". 0 means unknown.
type ID uint64

func (id ID) String() string {
	if id == 0 {
		return "net:[?]"
	}
	return "net:[" + strconv.FormatUint(uint64(id), 10) + "]"
}

// Of returns the network namespace of pid. fs.ErrNotExist means the
// process has exited; reading another user's process needs
// CAP_SYS_PTRACE.
func Of(pid int32) (ID, error) {
	return stat("/proc/" + strconv.Itoa(int(pid)) + "/ns/net")
}

// Own returns the network namespace of the calling thread. It reads
// /proc/thread-self, not /proc/self: the latter is the main thread's,
// which Do may have moved for a moment. Every thread but the one Do locks
// is in the process's namespace.
func Own() (ID, error) { return stat("/proc/thread-self/ns/net") }

func stat(path string) (ID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return ID(st.Ino), nil
}

// ErrNotPermitted wraps the error of a setns(2) the process may not make:
// it needs CAP_SYS_ADMIN, and a seccomp filter such as systemd's
// RestrictNamespaces=yes refuses it outright.
var ErrNotPermitted = errors.New("entering another network namespace is not permitted (needs CAP_SYS_ADMIN and setns allowed)")

// Do runs fn in the network namespace of pid, on an OS thread of its own
// that it locks, moves with setns(2), and moves back before it is
// released; if it cannot be moved back it stays locked and the runtime
// ends it with the goroutine, so no other goroutine ever runs in that
// namespace. fn must be synchronous: sockets and files it opens belong
// to the namespace; goroutines it starts do not.
//
// When pid is in the caller's own namespace fn runs on the caller's
// goroutine and no privilege is needed.
func Do(pid int32, fn func() error) error {
	target, err := os.Open("/proc/" + strconv.Itoa(int(pid)) + "/ns/net")
	if err != nil {
		return fmt.Errorf("network namespace of pid %d: %w", pid, err)
	}
	defer target.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(target.Fd()), &st); err != nil {
		return fmt.Errorf("network namespace of pid %d: %w", pid, err)
	}
	if own, err := Own(); err == nil && own == ID(st.Ino) {
		return fn()
	}
	errc := make(chan error, 1)
	go func() { errc <- doLocked(int(target.Fd()), ID(st.Ino), fn) }()
	return <-errc
}

// doLocked is Do's body on its own locked thread.
func doLocked(target int, id ID, fn func() error) error {
	runtime.LockOSThread()
	// The thread's own namespace, to return to. Opened on this thread,
	// before it moves.
	back, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("own network namespace: %w", err)
	}
	defer back.Close()
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("setns %s: %w: %w", id, ErrNotPermitted, err)
		}
		return fmt.Errorf("setns %s: %w", id, err)
	}
	ferr := fn()
	if err := unix.Setns(int(back.Fd()), unix.CLONE_NEWNET); err != nil {
		// Left locked: the runtime ends the thread with this goroutine.
		return errors.Join(ferr, fmt.Errorf("return from %s: %w", id, err))
	}
	runtime.UnlockOSThread()
	return ferr
}
