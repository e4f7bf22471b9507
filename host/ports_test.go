package host

import (
	"os"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/agent/procs"
)

// show proc's whole seconds are replaced by the start time /proc gives
// when both name the same process, and kept when they disagree.
func TestPreciseUptime(t *testing.T) {
	pid := int32(os.Getpid())
	start, _, err := procs.StartTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	age := now.Sub(procs.TicksTime(start))
	shown := age.Truncate(time.Second) + time.Second // show proc can be a second ahead
	if got := preciseUptime(master.Proc{PID: pid, Uptime: shown}, now); (got - age).Abs() > time.Millisecond {
		t.Errorf("uptime %v shown as %v: got %v, want /proc's", age, shown, got)
	}
	far := age + time.Hour // another pid namespace's process with this pid
	if got := preciseUptime(master.Proc{PID: pid, Uptime: far}, now); got != far {
		t.Errorf("shown %v, /proc %v: got %v, want the shown one", far, age, got)
	}
}
