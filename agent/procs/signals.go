package procs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Signals is a set of signals as /proc/PID/status prints it: bit n-1 is
// signal n.
type Signals uint64

// Has reports whether sig is in the set.
func (s Signals) Has(sig syscall.Signal) bool { return sig > 0 && sig <= 64 && s&(1<<(sig-1)) != 0 }

// PendingSignals reads the signals pending on pid: those sent to the
// thread (SigPnd) and to the process (ShdPnd), from proc (normally
// "/proc"). A signal that stays pending is one the process blocks and
// never takes.
func PendingSignals(proc string, pid int) (Signals, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/status", proc, pid))
	if err != nil {
		return 0, err
	}
	var out Signals
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || (string(k) != "SigPnd" && string(k) != "ShdPnd") {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/%d/status: %s: %w", proc, pid, k, err)
		}
		out |= Signals(n)
		found++
	}
	if found == 0 {
		return 0, fmt.Errorf("%s/%d/status: no SigPnd/ShdPnd", proc, pid)
	}
	return out, nil
}
