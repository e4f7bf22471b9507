package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// While a 2.6 master is between a reload and its new worker, `show proc`
// counts the reload and still lists the generation before as the
// workers: a change then would miss the worker about to start, so none
// is applied. After a failed reload the same listing is the settled
// state, and changes go through.
func TestNoChangeWhileAReloadIsInProgress(t *testing.T) {
	const head = "#<PID> <type> <reloads> <uptime> <version>\n"
	for _, tc := range []struct {
		name, showProc string
		refused        bool
	}{
		{"reload in progress", head + "1 master 2 [failed: 0] 0d00h00m06s 2.6.12\n# workers\n20 worker 1 0d00h00m04s 2.6.12\n", true},
		{"after a failed reload", head + "1 master 2 [failed: 1] 0d00h00m06s 2.6.12\n# workers\n20 worker 1 0d00h00m04s 2.6.12\n", false},
		{"settled", head + "1 master 2 [failed: 0] 0d00h00m06s 2.6.12\n# workers\n20 worker 0 0d00h00m04s 2.6.12\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli := &fakeCLI{maps: map[string]map[string]string{"20": {}}, showProc: tc.showProc}
			_, err := New(cli).SetMap(context.Background(), MapChange{Op: MapAdd, Map: "/m.map", Key: "10.0.0.9", Value: "x"})
			_, applied := cli.maps["20"]["10.0.0.9"]
			if tc.refused {
				if !errors.Is(err, ErrReloading) || !strings.Contains(err.Error(), "master is at reload 2 and worker 20 is of generation 1") || applied {
					t.Fatalf("err %v, applied %v: want ErrReloading and nothing applied", err, applied)
				}
				return
			}
			if err != nil || !applied {
				t.Fatalf("err %v, applied %v", err, applied)
			}
		})
	}
}
