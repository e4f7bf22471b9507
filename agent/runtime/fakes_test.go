package runtime

import (
	"context"
	"strings"
	"sync"
)

// fakeCLI is a master with a current worker (20) and an old one (10).
// show sess lists sess[pid] sessions on be/s1; each worker holds its own
// copy of one map (maps[pid]). The relay to a pid in hang never answers:
// the master's side of a worker killed between `show proc` and the
// command.
type fakeCLI struct {
	mu   sync.Mutex
	sess map[string]int
	maps map[string]map[string]string
	hang map[string]bool
	// showProc replaces the answer to `show proc` when set.
	showProc string
}

func (f *fakeCLI) Command(ctx context.Context, cmd string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if cmd == "show proc" && f.showProc != "" {
		return f.showProc, nil
	}
	if cmd == "show proc" {
		return "#<PID> <type> <reloads> <uptime> <version>\n1 master 1 [failed: 0] 0d00h00m06s 3.0.11\n# workers\n20 worker 0 0d00h00m04s 3.0.11\n# old workers\n10 worker 1 0d00h00m06s 3.0.11\n", nil
	}
	pid, rest, _ := strings.Cut(strings.TrimPrefix(cmd, "@!"), " ")
	if f.hang[pid] {
		<-ctx.Done()
		return "", ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if rest == "show sess" {
		return strings.Repeat("0x1: proto=tcpv4 fe=fe be=be srv=s1 ts=00\n", f.sess[pid]), nil
	}
	m := f.maps[pid]
	fs := strings.Fields(rest)
	switch {
	case len(fs) == 3 && fs[0] == "show":
		var b strings.Builder
		for k, v := range m {
			b.WriteString("0x1 " + k + " " + v + "\n")
		}
		return b.String(), nil
	case len(fs) == 5 && fs[0] == "add":
		m[fs[3]] = fs[4]
		return "\n", nil
	case len(fs) == 4 && fs[0] == "del":
		delete(m, fs[3])
		return "\n", nil
	}
	return "Unknown command\n", nil
}
