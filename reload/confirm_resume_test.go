package reload

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestResumeWindow: a daemon that starts with a window open leaves a
// running watcher alone, starts one that is not running, and rolls back
// a provisional reload whose deadline passed.
func TestResumeWindow(t *testing.T) {
	f := newFixture(t)
	if msg, err := f.r.ResumeWindow(context.Background()); msg != "" || err != nil {
		t.Fatalf("no window: %q %v", msg, err)
	}
	res := provisional(t, f, time.Hour)
	msg, err := f.r.ResumeWindow(context.Background())
	if err != nil || !strings.Contains(msg, "runs") || len(f.w.watches) != 1 {
		t.Fatalf("watcher running: %q %v, watches %v", msg, err, f.w.watches)
	}
	f.w.mu.Lock()
	f.w.active = "inactive" // the watcher's unit is gone
	f.w.mu.Unlock()
	msg, err = f.r.ResumeWindow(context.Background())
	if err != nil || !strings.Contains(msg, "was started") || len(f.w.watches) != 2 || f.w.watches[1] != res.ID {
		t.Fatalf("watcher gone: %q %v, watches %v", msg, err, f.w.watches)
	}
	f.w.mu.Lock()
	f.w.active = ""
	f.w.mu.Unlock()
	if p, _ := f.r.Pending(); p == nil || p.ID != res.ID {
		t.Fatalf("the window closed: %+v", p)
	}

	// Past the deadline: rolled back at once.
	f2 := newFixture(t)
	res2 := provisional(t, f2, 50*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	msg, err = f2.r.ResumeWindow(context.Background())
	if err != nil || !strings.Contains(msg, "deadline") || !strings.Contains(msg, ConfirmRolledBack) {
		t.Fatalf("deadline passed: %q %v", msg, err)
	}
	if f2.disk(t) != "good v1\n" {
		t.Fatalf("after the deadline, disk holds %q", f2.disk(t))
	}
	if e := entryOf(t, f2, res2.ID); e.Outcome != OutcomeRolledBack || e.Confirmation == nil || e.Confirmation.Result != ConfirmRolledBack {
		t.Fatalf("entry %+v", e)
	}
	if p, _ := f2.r.Pending(); p != nil {
		t.Fatalf("window still open: %+v", p)
	}
}
