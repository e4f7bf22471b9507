package cli

import (
	"os"
	"strings"
	"testing"
	"time"
)

// reload.min_interval on the command line, against the box's
// haproxy.service: right after a reload, `haguard reload --no-wait` is
// refused at once (exit 1) and touches nothing; without it the reload
// waits out the interval, says so on stderr, and commits.
func TestReloadMinIntervalWaitsOrFailsFast(t *testing.T) {
	b := newUXBox(t)
	y, err := os.ReadFile(b.yaml)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.yaml, []byte(strings.Replace(string(y), "min_interval: 0s", "min_interval: 6s", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := b.run(t, nil, "reload", "--force"); code != 0 {
		t.Fatalf("first reload: exit %d\n%s\n%s", code, out, errOut)
	}
	begin := time.Now()
	out, errOut, code := b.run(t, nil, "reload", "--force", "--no-wait")
	if code != 1 || !strings.Contains(out+errOut, "reload.min_interval is 6s: try again in") || time.Since(begin) > 3*time.Second {
		t.Fatalf("--no-wait inside the interval: exit %d after %v\n%s\n%s", code, time.Since(begin), out, errOut)
	}
	begin = time.Now()
	out, errOut, code = b.run(t, nil, "reload", "--force")
	took := time.Since(begin)
	if code != 0 || !strings.Contains(errOut, "haguard: reload.min_interval (6s): the last reload was") || took < 2*time.Second {
		t.Fatalf("reload inside the interval: exit %d after %v\n%s\n%s", code, took, out, errOut)
	}
	t.Logf("waited: the second reload took %v", took)
}
