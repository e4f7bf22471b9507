package validate

import (
	"strings"
	"testing"
)

func TestStatsSocket(t *testing.T) {
	for _, tc := range []struct{ cfg, want string }{
		{"global\n    stats socket /run/haproxy/admin.sock mode 660 level admin\n", "/run/haproxy/admin.sock"},
		{"global\n    stats socket ipv4@127.0.0.1:9999 level admin\n    stats socket unix@/run/x.sock\n", "/run/x.sock"},
		{"global\n    stats timeout 30s\n", ""},
	} {
		c, err := ParseReader("haproxy.cfg", strings.NewReader(tc.cfg))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.StatsSocket(); got != tc.want {
			t.Errorf("%q: stats socket %q, want %q", tc.cfg, got, tc.want)
		}
	}
}
