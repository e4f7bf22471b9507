package validate

import (
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/config"
)

// TestPA306RaisesSeverity: RULES.md PA306 raises by one the severity of
// the PA301/KN202 findings on a middlebox that drops idle sessions
// silently (a hang instead of a fast error), and says why in its own
// finding; a middlebox that resets keeps the plain severity.
func TestPA306RaisesSeverity(t *testing.T) {
	f := &Facts{Path: &config.Path{
		Middleboxes: []config.Middlebox{
			{Name: "fw", Kind: "fortigate", Hop: "server"}, // silent, 3600s
			{Name: "f5", Kind: "f5-ltm", Hop: "client"},    // resets, 300s
		},
		Clients: []config.Client{{Name: "nova", Kind: "sqlalchemy", PoolRecycle: cdur(time.Hour), PrePing: true}},
	}}
	bySev := func(fs []Finding) map[string]Severity {
		out := map[string]Severity{}
		for _, fd := range fs {
			for _, b := range []string{"fw", "f5", "lb"} {
				if strings.Contains(fd.Message, " "+b+" (") || strings.HasPrefix(fd.Message, b+" (") {
					out[b] = fd.Severity
				}
			}
		}
		return out
	}
	got := lintFacts(t, f)
	// pre-ping lowers PA301 to a warning (PA304); the silent firewall raises it back.
	if s := bySev(got["PA301"]); len(got["PA301"]) != 2 || s["fw"] != SevError || s["f5"] != SevWarning {
		t.Fatalf("PA301 with pre-ping: fw (silent) must be error, f5 (reset) warning: %+v", got["PA301"])
	}

	// KN202: no clitcpka on the client hop; a silent Azure LB there makes it an error.
	f.Path.Clients = nil
	f.Path.Middleboxes = []config.Middlebox{
		{Name: "lb", Kind: "azure-lb", Hop: "client"}, // silent, 4m
		{Name: "f5", Kind: "f5-ltm", Hop: "client"},   // resets, 300s
	}
	got = lintFacts(t, f)
	if s := bySev(got["KN202"]); len(got["KN202"]) != 2 || s["lb"] != SevError || s["f5"] != SevWarning {
		t.Fatalf("KN202: lb (silent) must be error, f5 (reset) warning: %+v", got["KN202"])
	}
	if fs := got["PA306"]; len(fs) != 1 || !strings.HasPrefix(fs[0].Message, "lb (azure-lb)") {
		t.Fatalf("PA306 must name the silent box KN202 hits: %+v", fs)
	}
}

// TestPA304CoversPA303: RULES.md PA304 applies when any of PA301–PA303
// fires; a pool that only outlives MySQL's wait_timeout (PA303) gets the
// PA304 note too.
func TestPA304CoversPA303(t *testing.T) {
	f := &Facts{
		DB: map[string]map[string]DBServerFacts{"galera": {"n1": dbf("600", "4"), "n2": dbf("600", "4"), "n3": dbf("600", "4")}},
		Path: &config.Path{Clients: []config.Client{
			{Name: "nova", Kind: "sqlalchemy", PoolRecycle: cdur(30 * time.Minute)}, // < HA_idle 1h, no middlebox
		}},
	}
	got := lintFacts(t, f)
	if len(got["PA301"]) != 0 || len(got["PA302"]) != 0 || len(got["PA303"]) != 1 {
		t.Fatalf("want PA303 only: PA301 %v PA302 %v PA303 %v", got["PA301"], got["PA302"], got["PA303"])
	}
	if fs := got["PA304"]; len(fs) != 1 || fs[0].Severity != SevWarning {
		t.Fatalf("PA304 with PA303 firing and no pre-ping: %+v", fs)
	}
}
