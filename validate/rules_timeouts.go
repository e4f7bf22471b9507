package validate

import (
	"fmt"
	"time"
)

// Rule family: client/server/connect/tunnel timeouts and reload draining
// (HA003, HA005, HA006, HA007, HA010, HA016).

func timeoutRules() []Rule {
	return []Rule{
		{ID: "HA003", Severity: SevError, Title: "Missing client/connect/server timeout", Eval: evalHA003},
		{ID: "HA005", Severity: SevWarning, Title: "client ≠ server in mode tcp", Eval: evalHA005},
		{ID: "HA006", Severity: SevWarning, Title: "Sample-default idle on a DB backend", Eval: evalHA006},
		{ID: "HA007", Severity: SevInfo, Title: "tunnel silently overrides client/server in mode tcp", Eval: evalHA007},
		{ID: "HA010", Severity: SevWarning, Title: "Long-lived tcp sessions but no hard-stop-after", Eval: evalHA010},
		{ID: "HA016", Severity: SevInfo, Title: "tunnel without client-fin", Eval: evalHA016},
	}
}

const (
	fiveMinutes = 5 * time.Minute
	tenMinutes  = 10 * time.Minute
)

// dbPorts are the ports that make a backend a database backend (RULES.md HA006).
var dbPorts = map[string]bool{"3306": true, "3307": true, "4006": true, "5432": true, "6432": true}

// isDB reports whether a backend fronts a database: a DB port on any
// server, or a "# haguard:db" / "# haguard:galera" tag.
func isDB(p *Proxy) bool {
	if p.Tagged("db") || p.Tagged("galera") {
		return true
	}
	for _, s := range p.Servers {
		if dbPorts[s.Port()] {
			return true
		}
	}
	return false
}

// evalHA003 replicates HAProxy's own "missing timeouts" condition
// (src/cfgparse.c, 2.6): frontend side without client; backend side with
// servers and without connect, or without server unless a tcp proxy has a
// tunnel timeout. Like HAProxy, it skips disabled proxies (in.proxies).
func evalHA003(in *Input) []Finding {
	var out []Finding
	fix := "set `timeout client`, `timeout connect` and `timeout server` to non-zero values, normally in `defaults` (e.g. connect 5s; client = server sized to the longest idle)"
	miss := func(p *Proxy, name string) {
		effect := "infinite idle; sessions accumulate"
		if name == "connect" {
			effect = "a connect to a dead server waits forever (queue and tarpit too)"
		}
		out = append(out, in.finding(SevError, p.Pos,
			fmt.Sprintf("%s '%s' has no 'timeout %s' → %s", p.Kind, p.Name, name, effect), fix))
	}
	// A value haproxy cannot read is HA018's: the config is refused, and
	// the timer is not missing.
	unset := func(p *Proxy, name string) bool { t := p.EffTimeout(name); return !t.Set() && t.Err == nil }
	for _, p := range in.proxies() {
		mode := p.EffMode().Value
		if mode != "tcp" && mode != "http" {
			continue
		}
		if p.HasFrontend() && unset(p, "client") {
			miss(p, "client")
		}
		if p.HasBackend() && len(p.Servers) > 0 {
			if unset(p, "connect") {
				miss(p, "connect")
			}
			if unset(p, "server") && (mode == "http" || !p.EffTimeout("tunnel").Set()) {
				miss(p, "server")
			}
		}
	}
	return out
}

// tcpRoutes are the routes in mode tcp, computed once per Input.
func tcpRoutes(in *Input) []Route {
	if in.tcp == nil {
		in.tcp = make([]Route, 0, len(in.Routes))
		for _, r := range in.Routes {
			if r.Mode() == "tcp" {
				in.tcp = append(in.tcp, r)
			}
		}
	}
	return in.tcp
}

func evalHA005(in *Input) []Finding {
	var out []Finding
	for _, r := range tcpRoutes(in) {
		c, s := r.Client(), r.Server()
		if r.Tunnel().Set() || !c.Set() || !s.Set() || c.Time.D == s.Time.D {
			continue
		}
		win := c
		if s.Time.D < c.Time.D {
			win = s
		}
		var msg string
		if r.Front == r.Back {
			msg = fmt.Sprintf("%s client=%s vs server=%s: effective idle is %s",
				r.Name(), FormatDuration(c.Time.D), FormatDuration(s.Time.D), FormatDuration(win.Time.D))
		} else {
			msg = fmt.Sprintf("%s '%s' client=%s vs %s '%s' server=%s: effective idle is %s",
				r.Front.Kind, r.Front.Name, FormatDuration(c.Time.D), r.Back.Kind, r.Back.Name,
				FormatDuration(s.Time.D), FormatDuration(win.Time.D))
		}
		out = append(out, in.finding(SevWarning, win.Pos, msg,
			"set `timeout client` = `timeout server` (HAProxy doc: in TCP mode the client timeout should remain equal to the server timeout)"))
	}
	return out
}

func evalHA006(in *Input) []Finding {
	var out []Finding
	for _, r := range tcpRoutes(in) {
		if !isDB(r.Back) {
			continue
		}
		idle, win := r.Idle()
		if idle == Infinite || idle > fiveMinutes {
			continue
		}
		out = append(out, in.finding(SevWarning, win.Pos,
			fmt.Sprintf("HA_idle=%s on DB backend '%s' (%s, from %s); idle pooled connections will be cut (2013/2006)",
				FormatDuration(idle), r.Back.Name, r.Name(), win.Keyword),
			"set `timeout client` = `timeout server` ≥ the longest idle of any client and ≤ MySQL wait_timeout (default 28800s), e.g. 8h; see DB101/PA302"))
	}
	return out
}

func evalHA007(in *Input) []Finding {
	var out []Finding
	for _, r := range tcpRoutes(in) {
		t := r.Tunnel()
		if !t.Set() {
			continue
		}
		c, s := r.Client(), r.Server()
		minCS, side := dur(s), s
		if dur(c) < minCS {
			minCS, side = dur(c), c
		}
		if t.Time.D == minCS {
			continue
		}
		name := "server"
		if side == c {
			name = "client"
		}
		via := ""
		if r.Front != r.Back {
			via = " (" + r.Name() + ")"
		}
		out = append(out, in.finding(SevInfo, t.Pos,
			fmt.Sprintf("timeout tunnel %s overrides %s %s for %s '%s'%s", FormatDuration(t.Time.D), name,
				fmtDur(minCS), r.Back.Kind, r.Back.Name, via),
			fmt.Sprintf("set `timeout tunnel` explicitly in %s to the idle time you want, or remove it so client/server apply", r.Back.Section())))
	}
	return out
}

// evalHA010 points at the global header, where hard-stop-after goes;
// without a global section, at the timer that makes the longest route's
// idle (or that route's frontend when nothing bounds it).
func evalHA010(in *Input) []Finding {
	var worst Route
	var worstIdle time.Duration
	var worstTimer TimeSetting
	for _, r := range tcpRoutes(in) {
		if idle, win := r.Idle(); idle > worstIdle {
			worst, worstIdle, worstTimer = r, idle, win
		}
	}
	if worstIdle <= fiveMinutes {
		return nil
	}
	g := in.Config.Global
	hsa := g.Timeouts["hard-stop-after"]
	if !hsa.Set() {
		pos := g.Pos
		if pos.Line == 0 {
			pos = worstTimer.Pos
		}
		if pos.Line == 0 {
			pos = worst.Front.Pos
		}
		return []Finding{in.finding(SevWarning, pos,
			fmt.Sprintf("every reload leaves old workers holding sessions for up to %s (%s); no hard-stop-after in global",
				fmtDur(worstIdle), worst.Name()),
			"set `hard-stop-after 30m` in global (≥ the expected drain, ≪ HA_idle) and/or server `tcp-ut`")}
	}
	if hsa.Time.D < worstIdle {
		return []Finding{in.finding(SevInfo, hsa.Pos,
			fmt.Sprintf("hard-stop-after %s < HA_idle %s (%s): long sessions will be cut at reload (expected)",
				FormatDuration(hsa.Time.D), fmtDur(worstIdle), worst.Name()),
			"nothing to do if intended; clients must reconnect after a reload")}
	}
	return nil
}

func evalHA016(in *Input) []Finding {
	var out []Finding
	for _, r := range in.Routes {
		t := r.Tunnel()
		idle, win := r.Idle()
		long := r.Mode() == "tcp" && idle > time.Hour
		if !t.Set() && !long {
			continue
		}
		if r.Front.EffTimeout("client-fin").Set() {
			continue
		}
		at, what := t, "timeout tunnel "+FormatDuration(t.Time.D)
		if !t.Set() {
			at, what = win, "HA_idle "+fmtDur(idle)
			if win.Pos.Line == 0 {
				at.Pos = r.Front.Pos
			}
		}
		out = append(out, in.finding(SevInfo, at.Pos,
			fmt.Sprintf("%s on %s but no timeout client-fin: half-closed client connections stay open as long", what, r.Name()),
			"set `timeout client-fin 30s` (HAProxy doc recommendation with long tunnels)"))
	}
	return out
}
