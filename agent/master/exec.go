package master

import (
	"os"
	"time"
)

// ExecWait bounds how long ReadSettled waits for a re-executing master.
// The kernel's window is well under a millisecond on an idle host; a
// loaded one can stretch it by a few scheduler slices.
const ExecWait = 500 * time.Millisecond

// ReadSettled reads a file of /proc/PID that execve rewrites (cmdline,
// environ). While a process is inside execve, between its old image
// and its new one, both read as empty, without an error. HAProxy's
// master re-executes itself on every reload, and 3.0's does it twice
// (once to load the new config, then into wait mode once the new
// worker is forked), so a reader that looks right after a reload can
// land in that window. An empty read is tried again every few
// milliseconds for up to ExecWait; a file still empty after that is
// returned empty (a zombie, or a process started with no environment).
func ReadSettled(path string) ([]byte, error) {
	deadline := time.Now().Add(ExecWait)
	for {
		b, err := os.ReadFile(path)
		if err != nil || len(b) > 0 || time.Now().After(deadline) {
			return b, err
		}
		time.Sleep(2 * time.Millisecond)
	}
}
