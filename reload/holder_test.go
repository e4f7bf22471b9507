package reload

import (
	"testing"
	"time"
)

func TestParseHolder(t *testing.T) {
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	for _, h := range []string{
		holderOf(Options{Who: "alice", Reason: "since when? (INC-1)"}, 4242, at),
		"pid 4242 (haguard confirm by bob, since 2026-12-02T09:00:00Z)",
		"pid 4242 since 2026-12-02T09:00:00Z", // before 2026-12
	} {
		if pid, since := parseHolder(h); pid != 4242 || !since.Equal(at) {
			t.Errorf("%q: pid %d since %v", h, pid, since)
		}
	}
	if pid, _ := parseHolder("garbage"); pid != 0 {
		t.Errorf("garbage: pid %d", pid)
	}
}
