package validate

import (
	"strings"
	"testing"

	"github.com/haguard/haguard/config"
)

// TestHA013UnlimitedMiddlebox: a middlebox declared with
// `idle_timeout: unlimited` has no idle timeout, so it does not set
// PATH_idle_min and HA013 keeps its 300 s threshold (as KN201/KN202 and
// the PA rules read it), instead of the kind's documented default.
func TestHA013UnlimitedMiddlebox(t *testing.T) {
	unlimited := config.Duration(-1)
	f := &Facts{Path: &config.Path{Middleboxes: []config.Middlebox{
		{Name: "fw", Kind: "fortigate", Hop: "client", IdleTimeout: &unlimited},
	}}}
	var ha013 []string
	for _, fd := range lintFacts(t, f)["HA013"] {
		ha013 = append(ha013, fd.Message)
	}
	if len(ha013) != 1 || !strings.Contains(ha013[0], "frontend 'app_in'") || !strings.Contains(ha013[0], "client side") {
		t.Fatalf("HA013 with an unlimited client-hop firewall and HA_idle 1h > 300s: %q", ha013)
	}
}
