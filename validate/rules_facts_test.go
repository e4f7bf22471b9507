package validate

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/config"
)

const factsCfg = `global
	maxconn 100

defaults
	mode tcp
	timeout connect 5s
	timeout client 1h
	timeout server 1h

frontend app_in
	bind 127.0.0.1:3307
	default_backend galera

backend galera
	option mysql-check
	option srvtcpka
	server n1 127.0.0.1:3306 check
	server n2 127.0.0.2:3306 check
	server n3 127.0.0.3:3306 check
`

func dbf(wait string, state string) DBServerFacts {
	return DBServerFacts{
		Variables: map[string]string{"wait_timeout": wait, "interactive_timeout": wait, "net_read_timeout": "30", "net_write_timeout": "60", "wsrep_on": "ON"},
		Status:    map[string]string{"wsrep_local_state": state, "wsrep_local_state_comment": map[string]string{"4": "Synced", "2": "Donor/Desynced"}[state], "wsrep_cluster_status": "Primary", "wsrep_ready": "ON"},
	}
}

func cdur(d time.Duration) *config.Duration { c := config.Duration(d); return &c }

func lintFacts(t *testing.T, f *Facts) map[string][]Finding {
	t.Helper()
	cfg, err := ParseReader("haproxy.cfg", strings.NewReader(factsCfg))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]Finding{}
	for _, fd := range DefaultRegistry().Lint(cfg, f) {
		out[fd.Rule] = append(out[fd.Rule], fd)
	}
	return out
}

func TestDBRules(t *testing.T) {
	got := lintFacts(t, &Facts{DB: map[string]map[string]DBServerFacts{"galera": {
		"n1": dbf("10", "4"), "n2": dbf("10", "2"), "n3": dbf("28800", "4"),
	}}})
	if fs := got["DB102"]; len(fs) != 2 || fs[0].Severity != SevError || !strings.Contains(fs[0].Message, "n1=10 n2=10 n3=28800") {
		t.Fatalf("DB102 %+v", fs)
	}
	if fs := got["DB101"]; len(fs) != 2 {
		t.Fatalf("DB101 want n1 and n2 (10s < 1h): %+v", fs)
	}
	if fs := got["DB103"]; len(fs) != 2 {
		t.Fatalf("DB103 %+v", fs)
	}
	if fs := got["DB104"]; len(fs) != 1 || fs[0].Severity != SevError || !strings.Contains(fs[0].Message, "galera/n2") {
		t.Fatalf("DB104 %+v", fs)
	}
	if fs := got["HA011"]; len(fs) != 1 || fs[0].Severity != SevError {
		t.Fatalf("HA011 must become an error once wsrep_on=ON is live: %+v", fs)
	}
	if _, ok := got["DB100"]; ok {
		t.Fatalf("DB100 without an unreadable server: %+v", got["DB100"])
	}
}

func TestDBUnreadableIsAFinding(t *testing.T) {
	got := lintFacts(t, &Facts{DB: map[string]map[string]DBServerFacts{"galera": {
		"n1": {Err: errString("connect 127.0.0.1:3306: connection refused")}, "n2": dbf("28800", "4"),
	}}})
	if fs := got["DB100"]; len(fs) != 1 || !strings.Contains(fs[0].Message, "connection refused") {
		t.Fatalf("DB100 %+v", fs)
	}
	if _, ok := got["DB102"]; ok {
		t.Fatal("an unreadable server must not count as divergent")
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestKernelAndPathRules(t *testing.T) {
	f := &Facts{
		Kernel: &KernelFacts{Sysctls: map[string]string{"net.ipv4.tcp_keepalive_time": "7200", "net.ipv4.tcp_retries2": "15"}},
		Path: &config.Path{
			Middleboxes: []config.Middlebox{
				{Name: "fw", Kind: "fortigate", Hop: "server"},
				{Name: "f5", Kind: "f5-ltm", Hop: "client"},
			},
			Clients: []config.Client{{Name: "nova", Kind: "sqlalchemy", PoolRecycle: cdur(time.Hour)}},
		},
	}
	got := lintFacts(t, f)
	if fs := got["KN201"]; len(fs) != 1 || !strings.Contains(fs[0].Message, "tcp_keepalive_time=2h") {
		t.Fatalf("KN201 (srvtcpka at 7200s vs fortigate 3600s) %+v", fs)
	}
	if fs := got["KN202"]; len(fs) != 1 || !strings.Contains(fs[0].Message, "f5") {
		t.Fatalf("KN202 (client side, no clitcpka, f5 300s < 1h) %+v", fs)
	}
	if fs := got["PA301"]; len(fs) != 2 || fs[0].Severity != SevError {
		t.Fatalf("PA301 (pool_recycle 1h vs f5 300s and fortigate 3600s) %+v", fs)
	}
	if fs := got["PA302"]; len(fs) != 1 {
		t.Fatalf("PA302 (pool 1h ≥ HA_idle 1h − margin) %+v", fs)
	}
	if fs := got["PA304"]; len(fs) != 1 || fs[0].Severity != SevWarning {
		t.Fatalf("PA304 %+v", fs)
	}
	if fs := got["PA306"]; len(fs) != 1 || !strings.Contains(fs[0].Message, "fw") {
		t.Fatalf("PA306 (fortigate drops silently) %+v", fs)
	}
	if fs := got["KN203"]; len(fs) != 1 {
		t.Fatalf("KN203 %+v", fs)
	}

	// pre-ping downgrades the pool findings to warnings (PA304).
	f.Path.Clients[0].PrePing = true
	got = lintFacts(t, f)
	if fs := got["PA301"]; len(fs) != 2 || fs[0].Severity != SevWarning {
		t.Fatalf("PA301 with pre-ping %+v", fs)
	}
	// A recycle below every idle bound is quiet.
	f.Path.Clients[0].PoolRecycle = cdur(280 * time.Second)
	got = lintFacts(t, f)
	for _, id := range []string{"PA301", "PA302", "PA306"} {
		if len(got[id]) != 0 {
			t.Fatalf("%s with pool_recycle 280s: %+v", id, got[id])
		}
	}
}

func TestFactRulesNeedFacts(t *testing.T) {
	got := lintFacts(t, nil)
	for id := range got {
		if slices.ContainsFunc(DefaultRegistry().Rules(), func(r Rule) bool { return r.ID == id && r.Needs != NeedsNone }) {
			t.Fatalf("%s ran without facts", id)
		}
	}
}
