package validate

import (
	"strings"
	"testing"
)

// TestUntrustedOutputFilter feeds haproxy 2.6's real message shapes
// (measured on Debian's 2.6.12) through the filter: content of another
// file never survives, the candidate's own messages do.
func TestUntrustedOutputFilter(t *testing.T) {
	const cand = "/etc/haproxy/haproxy.cfg"
	body := `global
    lua-load /etc/haproxy/x.lua
frontend f
    bind :80
    acl leak src -f /etc/haproxy/secret.lst
    option httplog
    http-request set-header X %[src,map_ip(/etc/haproxy/geo.map)]
    timeout client 5q
`
	cfg := parseString(t, cand, body)
	f := newOutputFilter(cfg, map[string][]byte{cand: []byte(body)})
	out := strings.Join([]string{
		"[NOTICE]   (7) : haproxy version is 2.6.12-1+deb12u4",
		"[NOTICE]   (7) : path to executable is /usr/sbin/haproxy",
		"[ALERT]    (7) : config : parsing [/etc/haproxy/haproxy.cfg:5] : error detected while parsing ACL 'leak' : 'SECRET-1 line one' is not a valid IPv4 or IPv6 address at line 1 of file '/etc/haproxy/secret.lst'.",
		"[ALERT]    (7) : config : parsing [/etc/haproxy/haproxy.cfg:7] : error detected in frontend 'f' while parsing 'http-request set-header' rule : failed to parse sample expression <src,map_ip(/etc/haproxy/geo.map)]> : invalid args in converter 'map_ip' : 'SECRET-2' is not a valid IPv4 or IPv6 address at line 1 of file '/etc/haproxy/geo.map'.",
		"[ALERT]    (7) : config : parsing [/etc/haproxy/haproxy.cfg:2] : error in Lua file '/etc/haproxy/x.lua': /etc/haproxy/x.lua:1: syntax error near 'SECRET-3'",
		"[ALERT]    (7) : config : parsing [/etc/haproxy/haproxy.cfg:8] : unexpected character 'q' in 'timeout client'",
		"[WARNING]  (7) : config : parsing [/etc/haproxy/haproxy.cfg:6] : 'option httplog' not usable with frontend 'f' (needs 'mode http'). Falling back to 'option tcplog'.",
		"[ALERT]    (7) : config : parsing [/etc/haproxy/crt.lst:3] : 'SECRET-4' does not exist",
		"SECRET-5 printed by Lua",
		"[WARNING]  (7) : SECRET-6 printed by Lua as a message",
		"[ALERT]    (7) : config : Error(s) found in configuration file : /etc/haproxy/haproxy.cfg",
		"[ALERT]    (7) : config : Fatal errors found in configuration.",
	}, "\n") + "\n"
	got, withheld := f.apply(out)
	for i := 1; i <= 6; i++ {
		if s := "SECRET-" + string(rune('0'+i)); strings.Contains(got, s) {
			t.Errorf("%s survived the filter:\n%s", s, got)
		}
	}
	for _, want := range []string{
		"haproxy version is 2.6.12", "path to executable is /usr/sbin/haproxy",
		"parsing [/etc/haproxy/haproxy.cfg:5] : haguard withheld haproxy's message: this line loads /etc/haproxy/secret.lst",
		"parsing [/etc/haproxy/haproxy.cfg:2] : haguard withheld",
		"unexpected character 'q' in 'timeout client'",
		"'option httplog' not usable with frontend 'f' (needs 'mode http'). Falling back to 'option tcplog'.",
		"Error(s) found in configuration file : /etc/haproxy/haproxy.cfg", "Fatal errors found in configuration.",
		"haguard: 6 line(s) of haproxy's output withheld",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("filtered output lacks %q:\n%s", want, got)
		}
	}
	if withheld != 6 {
		t.Errorf("withheld %d, want 6 (3 located, 1 other file, 2 printed by Lua)", withheld)
	}

	// Without Lua, a message with no location is haproxy's own; a quoted
	// span that is not the candidate's text is still redacted.
	f.lua = false
	got, _ = f.apply("[WARNING]  (7) : config : missing timeouts for frontend 'f'.\n[ALERT]    (7) : config : something 'SECRET-7:x' odd\n")
	if !strings.Contains(got, "missing timeouts for frontend 'f'.") || strings.Contains(got, "SECRET-7") || !strings.Contains(got, "'(withheld)'") {
		t.Errorf("unlocated messages without Lua:\n%s", got)
	}
	// A candidate that does not parse: every located message is withheld.
	f.noModel = true
	if got, _ = f.apply("[ALERT]    (7) : config : parsing [/etc/haproxy/haproxy.cfg:8] : unexpected 'x'\n"); strings.Contains(got, "unexpected") {
		t.Errorf("no model, located message kept:\n%s", got)
	}
}
