package master

import (
	"strings"
	"testing"
)

// The environments below were read from /proc/MAINPID/environ of Debian's
// haproxy 2.6.12 master started with -Ws and no -S, before a reload, while
// it loads, and after a load that failed (a bind that cannot be made).
func TestParseCounters(t *testing.T) {
	env := func(lines ...string) []byte { return []byte(strings.Join(lines, "\x00") + "\x00") }
	procs := func(r, f int) string {
		return "HAPROXY_PROCESSES=|type=m;fd=-1;pid=94;reloads=" + itoa(r) + ";failedreloads=" + itoa(f) +
			";timestamp=1796196116;id=;version=(null)|type=w;fd=3;pid=96;reloads=" + itoa(r) + ";failedreloads=" + itoa(f) + ";timestamp=1796196116;id=;version=2.6.12-1+deb12u4"
	}
	for _, tc := range []struct {
		env  []byte
		want Counters
		ok   bool
	}{
		{env("HAPROXY_MWORKER=1", "HAPROXY_MWORKER_WAIT_ONLY=1", procs(0, 0)), Counters{0, 0, true}, true},
		{env("HAPROXY_MWORKER=1", "HAPROXY_MWORKER_REEXEC=1", procs(1, 0)), Counters{1, 0, false}, true},
		{env("HAPROXY_MWORKER_WAIT_ONLY=1", procs(1, 1)), Counters{1, 1, true}, true},
		{env("PATH=/usr/bin", "HOME=/"), Counters{}, false},
	} {
		got, ok := ParseCounters(tc.env)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v %v", tc.env, got, ok, tc.want, tc.ok)
		}
	}
}

func itoa(n int) string { return string(rune('0' + n)) }
