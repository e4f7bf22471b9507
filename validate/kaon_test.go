package validate

import (
	"strings"
	"testing"
)

// TestKaOnFollowsHAProxyBits pins how the keepalive options combine.
// `option tcpka` sets, and `no option tcpka` clears, both the client and
// the server keepalive bits; clitcpka/srvtcpka touch one bit each; within
// a section the last line touching a bit wins, else the defaults' value.
// Observed on haproxy 2.6 with `ss -o` (timer:(keepalive...) on the
// server-side socket): cases "defaults srvtcpka, no tcpka" and
// "tcpka then no srvtcpka" leave the server side without keepalive;
// "no srvtcpka then tcpka" turns it on.
func TestKaOnFollowsHAProxyBits(t *testing.T) {
	tests := []struct {
		name     string
		defaults string
		backend  string
		want     bool
	}{
		{"srvtcpka", "", "option srvtcpka", true},
		{"tcpka", "", "option tcpka", true},
		{"clitcpka only", "", "option clitcpka", false},
		{"defaults srvtcpka, no tcpka", "option srvtcpka", "no option tcpka", false},
		{"defaults tcpka, no srvtcpka", "option tcpka", "no option srvtcpka", false},
		{"tcpka then no srvtcpka", "", "option tcpka\n    no option srvtcpka", false},
		{"no srvtcpka then tcpka", "", "no option srvtcpka\n    option tcpka", true},
		{"no tcpka then srvtcpka", "", "no option tcpka\n    option srvtcpka", true},
		{"defaults tcpka, no clitcpka", "option tcpka", "no option clitcpka", true},
		{"inherited", "option tcpka", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "defaults\n    mode tcp\n    " + tt.defaults + "\nbackend b\n    " + tt.backend + "\n    server s 127.0.0.1:3306\n"
			cfg, err := ParseReader("ka.cfg", strings.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			if _, got := kaOn(cfg.Backends[0], "server"); got != tt.want {
				t.Errorf("server-side keepalive = %v, want %v\n%s", got, tt.want, text)
			}
		})
	}
}
