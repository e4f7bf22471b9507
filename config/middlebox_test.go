package config

import (
	"testing"
	"time"
)

// TestMiddleboxDefaultsMatchRules pins MiddleboxDefaults to RULES.md §1.D
// (idle timeouts) and §2 (only ALB/CLB and an F5 full proxy with an HTTP
// profile are l7; a TCP-profile full proxy, firewalls, NLB, Azure LB, NAT,
// conntrack and IPVS are refreshed by TCP keepalive). Reset on timeout is
// pinned where §1.D documents it: F5 FastL4 resets, Azure LB and Swarm
// IPVS drop silently.
func TestMiddleboxDefaultsMatchRules(t *testing.T) {
	want := map[string]struct {
		idle time.Duration
		l7   bool
	}{
		"f5-ltm":     {300 * time.Second, false},
		"f5-ltm-tcp": {300 * time.Second, false},
		"fortigate":  {3600 * time.Second, false},
		"asa":        {time.Hour, false},
		"paloalto":   {3600 * time.Second, false},
		"aws-nlb":    {350 * time.Second, false},
		"aws-alb":    {60 * time.Second, true},
		"aws-clb":    {60 * time.Second, true},
		"azure-lb":   {4 * time.Minute, false},
		"gcp-nat":    {1200 * time.Second, false},
		"conntrack":  {432000 * time.Second, false},
		"kube-proxy": {24 * time.Hour, false},
		"swarm-ipvs": {900 * time.Second, false},
		"generic":    {0, false},
	}
	if len(MiddleboxDefaults) != len(want) {
		t.Errorf("MiddleboxDefaults has %d kinds, RULES.md §1.D %d", len(MiddleboxDefaults), len(want))
	}
	for kind, w := range want {
		got, ok := MiddleboxDefaults[kind]
		if !ok {
			t.Errorf("kind %s missing", kind)
			continue
		}
		if got.Idle != w.idle || got.L7 != w.l7 {
			t.Errorf("%s: idle=%v l7=%v, want idle=%v l7=%v", kind, got.Idle, got.L7, w.idle, w.l7)
		}
	}
	if !MiddleboxDefaults["f5-ltm"].ResetOnTimeout {
		t.Error("f5-ltm: FastL4 resetOnTimeout defaults to true")
	}
	for _, k := range []string{"azure-lb", "swarm-ipvs"} {
		if MiddleboxDefaults[k].ResetOnTimeout {
			t.Errorf("%s drops idle connections silently by default", k)
		}
	}
}
