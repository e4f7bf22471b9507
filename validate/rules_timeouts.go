package validate

import (
	"fmt"
	"strings"
	"time"

	"github.com/haguard/haguard/config"
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

// Protocols of a database backend, for messages that speak its language.
const (
	protoMySQL    = "mysql"
	protoPostgres = "postgresql"
	protoDB       = "db" // a database of unknown kind (# haguard:db)
)

// dbPorts are the ports that make a backend a database backend (RULES.md
// HA006), and the protocol they speak.
var dbPorts = map[string]string{"3306": protoMySQL, "3307": protoMySQL, "4006": protoMySQL,
	"5432": protoPostgres, "5433": protoPostgres, "6432": protoPostgres}

// dbProtocol says whether a backend fronts a database and which one: its
// health check (mysql-check, pgsql-check), a tag (# haguard:mysql,
// # haguard:postgresql, # haguard:galera, # haguard:db), else its servers'
// ports. "" when it is not a database backend.
func dbProtocol(p *Proxy) string {
	if chk := p.EffCheck(); chk != nil {
		switch chk.Name {
		case "mysql-check":
			return protoMySQL
		case "pgsql-check":
			return protoPostgres
		}
	}
	switch {
	case p.Tagged("galera") || p.Tagged("mysql"):
		return protoMySQL
	case p.Tagged("postgresql") || p.Tagged("pgsql"):
		return protoPostgres
	}
	proto := ""
	for _, s := range p.Servers {
		if v, ok := dbPorts[s.Port()]; ok {
			proto = v
			break
		}
	}
	if proto == "" && p.Tagged("db") {
		return protoDB
	}
	return proto
}

// isDB reports whether a backend fronts a database.
func isDB(p *Proxy) bool { return dbProtocol(p) != "" }

// dbName is how messages name a backend's database: "MySQL", "PostgreSQL"
// or "database".
func dbName(p *Proxy) string {
	switch dbProtocol(p) {
	case protoMySQL:
		return "MySQL"
	case protoPostgres:
		return "PostgreSQL"
	}
	return "database"
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
		f := in.finding(SevError, p.Pos,
			fmt.Sprintf("%s '%s' has no 'timeout %s' → %s", p.Kind, p.Name, name, effect), fix)
		f.Key = "timeout " + name
		out = append(out, f)
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
		f := in.finding(SevWarning, win.Pos, msg,
			"set `timeout client` = `timeout server` (HAProxy doc: in TCP mode the client timeout should remain equal to the server timeout)")
		f.Key = r.Name()
		out = append(out, f)
	}
	return out
}

// idleCut says what a client of each protocol sees when haproxy cuts an
// idle pooled connection, and how to size the timers.
var idleCut = map[string]struct{ symptom, fix string }{
	protoMySQL: {
		`pooled connections fail on reuse with 2013 "Lost connection to MySQL server during query", then 2006 "MySQL server has gone away"`,
		"set `timeout client` = `timeout server` above the longest idle of any client's pool and at most MySQL's wait_timeout (default 28800s), e.g. 8h; see DB101/PA302",
	},
	protoPostgres: {
		`pooled connections fail on reuse with "server closed the connection unexpectedly" (libpq) or "An I/O error occurred while sending to the backend" (JDBC)`,
		"set `timeout client` = `timeout server` above the longest idle of any client's pool (pgbouncer's server_idle_timeout is 600s by default; PostgreSQL keeps idle sessions unless idle_session_timeout is set), e.g. 1h; see PA302",
	},
	protoDB: {
		"pooled connections are reset when a client reuses them",
		"set `timeout client` = `timeout server` above the longest idle of any client's pool, and below the database's own idle limit; see PA302",
	},
}

func evalHA006(in *Input) []Finding {
	var out []Finding
	for _, r := range tcpRoutes(in) {
		proto := dbProtocol(r.Back)
		if proto == "" {
			continue
		}
		idle, win := r.Idle()
		if idle == Infinite || idle > fiveMinutes {
			continue
		}
		cut := idleCut[proto]
		via := r.Name() + ", " + win.Keyword
		if r.Front == r.Back {
			via = win.Keyword
		}
		f := in.finding(SevWarning, win.Pos,
			fmt.Sprintf("haproxy cuts sessions idle for %s on %s %s '%s' (%s): %s",
				FormatDuration(idle), dbName(r.Back), r.Back.Kind, r.Back.Name, via, cut.symptom),
			cut.fix)
		f.Key = r.Name()
		out = append(out, f)
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
		f := in.finding(SevInfo, t.Pos,
			fmt.Sprintf("timeout tunnel %s overrides %s %s for %s '%s'%s", FormatDuration(t.Time.D), name,
				fmtDur(minCS), r.Back.Kind, r.Back.Name, via),
			fmt.Sprintf("set `timeout tunnel` explicitly in %s to the idle time you want, or remove it so client/server apply", r.Back.Section()))
		f.Key = r.Name()
		out = append(out, f)
	}
	return out
}

// evalHA010 points at the global header, where hard-stop-after goes;
// without a global section, at the timer that makes the longest route's
// idle (or that route's frontend when nothing bounds it). The routes are
// the tcp ones (idle: tunnel, else client/server) and, in http mode,
// those with a tunnel timeout (websockets and other upgraded
// connections idle for it). Enforced generation limits in haguard.yaml
// bound old workers as hard-stop-after does: then only an info says so.
func evalHA010(in *Input) []Finding {
	var worst Route
	var worstIdle time.Duration
	var worstTimer TimeSetting
	for _, r := range tcpRoutes(in) {
		if idle, win := r.Idle(); idle > worstIdle {
			worst, worstIdle, worstTimer = r, idle, win
		}
	}
	for _, r := range in.Routes {
		if t := r.Tunnel(); r.Mode() == "http" && t.Set() && t.Time.D > worstIdle {
			worst, worstIdle, worstTimer = r, t.Time.D, t
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
		if gl := in.Facts.Generations; gl != nil && gl.Enforce && gl.Limited() {
			f := in.finding(SevInfo, pos,
				fmt.Sprintf("sessions may hold old workers for up to %s (%s) and there is no hard-stop-after in global, but haguard.yaml's enforced generations limits bound them (%s)",
					fmtDur(worstIdle), worst.Name(), generationLimits(gl)),
				"nothing to do: haguard closes the old generations over a limit gracefully (docs/generations.md)")
			f.Key = "hard-stop-after"
			return []Finding{f}
		}
		f := in.finding(SevWarning, pos,
			fmt.Sprintf("every reload leaves old workers holding sessions for up to %s (%s); no hard-stop-after in global",
				fmtDur(worstIdle), worst.Name()),
			"set `hard-stop-after 30m` in global (at least the drain you expect, much shorter than the longest idle timeout) and/or server `tcp-ut`, or bound old generations in haguard.yaml (generations: max_age, max_draining, enforce: true)")
		f.Key = "hard-stop-after"
		return []Finding{f}
	}
	if hsa.Time.D < worstIdle {
		f := in.finding(SevInfo, hsa.Pos,
			fmt.Sprintf("hard-stop-after %s is shorter than the time sessions may stay idle (%s, %s): long sessions are cut at each reload (expected)",
				FormatDuration(hsa.Time.D), idleFor(worstIdle), worst.Name()),
			"nothing to do if intended; clients must reconnect after a reload")
		f.Key = "hard-stop-after"
		return []Finding{f}
	}
	return nil
}

// generationLimits names the limits set in g ("max_age 1h, max_draining 3").
func generationLimits(g *config.Generations) string {
	var out []string
	if !g.MaxAge.IsUnlimited() {
		out = append(out, "max_age "+FormatDuration(g.MaxAge.D()))
	}
	if g.MaxDraining > 0 {
		out = append(out, fmt.Sprintf("max_draining %d", g.MaxDraining))
	}
	if !g.MaxRSS.IsUnlimited() {
		out = append(out, "max_rss")
	}
	if !g.MaxTotalRSS.IsUnlimited() {
		out = append(out, "max_total_rss")
	}
	return strings.Join(out, ", ")
}

// evalHA016 reports each frontend (or listen) without client-fin whose
// routes have a tunnel timeout or, in tcp mode, an idle time over an
// hour: once per frontend, since client-fin is the frontend's setting.
func evalHA016(in *Input) []Finding {
	type hit struct {
		tunnel TimeSetting // the longest tunnel timeout of its routes
		idle   time.Duration
		win    TimeSetting
		routes []string
	}
	hits := map[*Proxy]*hit{}
	var order []*Proxy
	for _, r := range in.Routes {
		t := r.Tunnel()
		idle, win := r.Idle()
		long := r.Mode() == "tcp" && idle > time.Hour
		if (!t.Set() && !long) || r.Front.EffTimeout("client-fin").Set() {
			continue
		}
		h := hits[r.Front]
		if h == nil {
			h = &hit{}
			hits[r.Front] = h
			order = append(order, r.Front)
		}
		h.routes = append(h.routes, r.Name())
		if t.Set() && (!h.tunnel.Set() || t.Time.D > h.tunnel.Time.D) {
			h.tunnel = t
		}
		if long && idle > h.idle {
			h.idle, h.win = idle, win
		}
	}
	var out []Finding
	for _, fe := range order {
		h := hits[fe]
		var f Finding
		if h.tunnel.Set() {
			routes := ""
			if len(h.routes) > 1 || h.routes[0] != fe.Kind.quoted(fe.Name) {
				routes = " (" + strings.Join(h.routes, ", ") + ")"
			}
			f = in.finding(SevInfo, h.tunnel.Pos,
				fmt.Sprintf("timeout tunnel %s applies to %s '%s'%s, which has no timeout client-fin: a client that half-closes its connection keeps it open for the whole tunnel timeout",
					FormatDuration(h.tunnel.Time.D), fe.Kind, fe.Name, routes),
				"set `timeout client-fin 30s` in the frontend or its defaults (HAProxy's doc recommends it with timeout tunnel)")
		} else {
			pos := h.win.Pos
			if pos.Line == 0 {
				pos = fe.Pos
			}
			f = in.finding(SevInfo, pos,
				fmt.Sprintf("sessions of %s '%s' may stay idle %s and it has no timeout client-fin: a client that half-closes its connection keeps it open that long",
					fe.Kind, fe.Name, idleFor(h.idle)),
				"set `timeout client-fin 30s` in the frontend or its defaults, so half-closed client connections close quickly")
		}
		f.Key = fe.Section()
		f.About = []string{fe.Section()}
		out = append(out, f)
	}
	return out
}
