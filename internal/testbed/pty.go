package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// OpenPTY opens a pseudo-terminal of cols columns: the side a program
// writes to (its stdin, stdout and stderr) and the side a test reads what
// the terminal receives from. It is /dev/ptmx and the kernel's ioctls,
// which is all a terminal takes here.
func OpenPTY(cols int) (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	fd := int(ptm.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: uint16(cols)}); err != nil {
		ptm.Close()
		pts.Close()
		return nil, nil, fmt.Errorf("pty size: %w", err)
	}
	return ptm, pts, nil
}

// RunTTY runs argv in the box (as Run does) with its stdin, stdout and
// stderr on a new pseudo-terminal of cols columns, as an operator's shell
// would, types input on it, and returns everything the terminal showed
// (the echoed input and control sequences included). The error is the
// program's exit (an *exec.ExitError).
func (s *Sandbox) RunTTY(ctx context.Context, cols int, input string, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("run: empty argv")
	}
	ptm, pts, err := OpenPTY(cols)
	if err != nil {
		return "", err
	}
	defer ptm.Close()
	cmd := exec.CommandContext(ctx, "nsenter", s.nsenterArgs(argv)...)
	cmd.Env = append(append([]string(nil), boxEnv...), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		pts.Close()
		return "", fmt.Errorf("in box: %w", err)
	}
	pts.Close() // the child holds it; the read below ends when it exits
	if input != "" {
		if _, err := ptm.WriteString(input); err != nil {
			return "", fmt.Errorf("type on the pty: %w", err)
		}
	}
	out := &SyncBuffer{}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, ptm)
		copied <- err
	}()
	werr := cmd.Wait()
	select {
	case <-copied: // EIO once the last writer closed the terminal
	case <-time.After(5 * time.Second):
		return out.String(), fmt.Errorf("pty: output still open 5s after exit (a child holds it?); exit: %v", werr)
	}
	return out.String(), werr
}
