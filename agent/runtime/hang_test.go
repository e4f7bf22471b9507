package runtime

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// mapCLI is a master with a current worker (20) and an old one (10),
// each holding its own copy of one map. The relay to a pid in hang
// never answers: the master's side of a worker killed between
// `show proc` and the command.
type mapCLI struct {
	mu   sync.Mutex
	maps map[string]map[string]string
	hang map[string]bool
}

func (f *mapCLI) Command(ctx context.Context, cmd string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
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

// A worker whose relay hangs costs ProcessTimeout, not the caller's
// whole budget; and the caller's budget running out mid-change does not
// stop the revert: the current worker is put back either way.
func TestHungProcessDoesNotStopTheRevert(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limit  time.Duration // ProcessTimeout
		budget time.Duration // the caller's
		want   string
	}{
		{"process timeout first", 50 * time.Millisecond, 10 * time.Second, "did not answer"},
		{"caller budget first", time.Hour, 200 * time.Millisecond, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli := &mapCLI{
				maps: map[string]map[string]string{"20": {"10.0.0.1": "a"}, "10": {"10.0.0.1": "a"}},
				hang: map[string]bool{"10": true},
			}
			rt := New(cli)
			rt.ProcessTimeout = tc.limit
			ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
			defer cancel()
			start := time.Now()
			rep, err := rt.SetMap(ctx, MapChange{Op: MapAdd, Map: "/m.map", Key: "10.0.0.9", Value: "x"})
			var fe *FailedError
			if !errors.As(err, &fe) || fe.PID != 10 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want the old worker's failure naming %q", err, tc.want)
			}
			if el := time.Since(start); el > tc.budget+5*time.Second {
				t.Errorf("took %s", el)
			}
			if !rep.Reverted || rep.Processes[0].Outcome != Reverted || rep.Processes[1].Outcome != Failed {
				t.Fatalf("%+v", rep)
			}
			if _, ok := cli.maps["20"]["10.0.0.9"]; ok {
				t.Fatalf("current worker still holds the entry: %v", cli.maps["20"])
			}
		})
	}
}
