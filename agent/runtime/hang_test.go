package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

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
			cli := &fakeCLI{
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
