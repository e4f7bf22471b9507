package validate

import (
	"fmt"
	"time"

	"github.com/haguard/haguard/config"
)

// Rule family: the declared path (PA301-PA307, RULES.md §3.4): client
// pools from haguard.yaml against middleboxes, haproxy and MySQL.

func pathRules() []Rule {
	return []Rule{
		{ID: "PA301", Severity: SevError, Title: "Pool idles longer than a middlebox on its path", Needs: NeedsPath, Eval: evalPA301},
		{ID: "PA302", Severity: SevError, Title: "Pool idles longer than HAProxy", Needs: NeedsPath, Eval: evalPA302},
		{ID: "PA303", Severity: SevError, Title: "Pool idles longer than MySQL", Needs: NeedsPath | NeedsDB, Eval: evalPA303},
		{ID: "PA304", Severity: SevInfo, Title: "Checkout validation present or absent", Needs: NeedsPath, Eval: evalPA304},
		{ID: "PA305", Severity: SevError, Title: "Middlebox TTL below the app host's keepalive", Needs: NeedsPath, Eval: evalPA305},
		{ID: "PA306", Severity: SevWarning, Title: "Silent-drop middlebox", Needs: NeedsPath, Eval: evalPA306},
		{ID: "PA307", Severity: SevWarning, Title: "L7 balancer with TCP-keepalive-only liveness", Needs: NeedsPath, Eval: evalPA307},
	}
}

// dOr is a declared duration: def when not declared, Infinite when
// "unlimited" (or <= 0 when zeroInf).
func dOr(d *config.Duration, def time.Duration, zeroInf bool) time.Duration {
	switch {
	case d == nil:
		return def
	case d.IsUnlimited():
		return Infinite
	case d.D() == 0 && zeroInf:
		return Infinite
	}
	return d.D()
}

// poolIdleMax is POOL_idle_max (RULES.md §2) and what bounds it; 0 means
// the client holds no idle pooled connection.
func poolIdleMax(c config.Client) (time.Duration, string) {
	switch c.Kind {
	case "sqlalchemy":
		return dOr(c.PoolRecycle, Infinite, false), "pool_recycle"
	case "django":
		return dOr(c.ConnMaxAge, 0, false), "CONN_MAX_AGE"
	case "hikaricp":
		d := dOr(c.MaxLifetime, 30*time.Minute, true)
		if c.MinIdleBelowMax {
			d = min(d, dOr(c.IdleTimeout, 10*time.Minute, true))
		}
		return d, "maxLifetime/idleTimeout"
	case "go":
		return min(dOr(c.ConnMaxIdleTime, Infinite, true), dOr(c.ConnMaxLifetime, Infinite, true)), "SetConnMaxIdleTime/SetConnMaxLifetime"
	case "pgbouncer":
		return min(dOr(c.ServerIdleTimeout, 600*time.Second, true), dOr(c.ServerLifetime, 3600*time.Second, true)), "server_idle_timeout/server_lifetime"
	case "pdo":
		if c.Persistent {
			return Infinite, "ATTR_PERSISTENT"
		}
		return 0, "ATTR_PERSISTENT"
	default:
		return min(dOr(c.ConnMaxIdleTime, 0, false), dOr(c.ConnMaxLifetime, Infinite, true)), "conn_max_idle_time"
	}
}

// refresh is how often something other than traffic touches an idle
// pooled connection (0 = never), and whether it is TCP keepalive (which
// L7 boxes ignore) or an application ping.
func refresh(in *Input, c config.Client) (every time.Duration, tcpOnly bool) {
	if c.Kind == "hikaricp" && c.KeepaliveTime != nil && !c.KeepaliveTime.IsUnlimited() && c.KeepaliveTime.D() > 0 {
		return c.KeepaliveTime.D(), false
	}
	if c.SoKeepalive {
		if c.TCPKeepaliveTime != nil && !c.TCPKeepaliveTime.IsUnlimited() {
			return c.TCPKeepaliveTime.D(), true
		}
		d, _ := sysctlSeconds(in, "net.ipv4.tcp_keepalive_time", 7200*time.Second)
		return d, true
	}
	return 0, false
}

// mitigated: the pool validates connections at checkout (PA304).
func mitigated(c config.Client) bool { return c.PrePing || c.HealthChecks }

// poolSev is an error, or a warning when checkout validation replaces
// stale connections (PA304).
func poolSev(c config.Client) Severity {
	if mitigated(c) {
		return SevWarning
	}
	return SevError
}

// raise is PA306's "raise severity by one": info → warning → error.
func raise(s Severity) Severity {
	if s == SevInfo {
		return SevWarning
	}
	return SevError
}

// clientRoutes are the tcp routes a client's frontend reaches (all when empty).
func clientRoutes(in *Input, c config.Client) []Route {
	var out []Route
	for _, r := range tcpRoutes(in) {
		if c.Frontend == "" || r.Front.Name == c.Frontend {
			out = append(out, r)
		}
	}
	return out
}

func clientName(c config.Client) string {
	if c.Name != "" {
		return c.Name + " (" + c.Kind + ")"
	}
	return c.Kind
}

// pathPos is where path findings point: haproxy.cfg has no line for a
// client, so they point at the header of the first frontend it reaches
// (else the global header, else the config as a whole).
func pathPos(in *Input, c config.Client) Pos {
	if rs := clientRoutes(in, c); len(rs) > 0 {
		return rs[0].Front.Pos
	}
	return in.configPos()
}

// staleBoxes are the middleboxes (both hops) a client's idle pooled
// connection outlives, unless a refresh reaches them in time.
func staleBoxes(in *Input, c config.Client) (idle time.Duration, what string, hit []box) {
	idle, what = poolIdleMax(c)
	if idle == 0 {
		return idle, what, nil
	}
	every, tcpOnly := refresh(in, c)
	for _, b := range boxes(in.Facts, "") {
		if b.Idle == 0 || idle < b.Idle-margin(b.Idle) {
			continue
		}
		if every > 0 && every < b.Idle-margin(b.Idle) && !(b.L7 && tcpOnly) {
			continue
		}
		hit = append(hit, b)
	}
	return idle, what, hit
}

func evalPA301(in *Input) []Finding {
	var out []Finding
	for _, c := range in.Facts.Path.Clients {
		idle, what, hit := staleBoxes(in, c)
		pos := pathPos(in, c)
		for _, b := range hit {
			sev := poolSev(c)
			if !b.Reset {
				sev = raise(sev) // PA306: a silent drop hangs instead of failing fast
			}
			out = append(out, in.finding(sev, pos,
				fmt.Sprintf("%s %s=%s ≥ %s (%s) idle %s on the %s hop: the pool reuses connections the middlebox has forgotten (2006 after idle)",
					clientName(c), what, fmtDur(idle), b.Name, b.Kind, fmtDur(b.Idle), b.Hop),
				fmt.Sprintf("bound the pool below %s (e.g. %s=%s), or raise the middlebox idle timeout (then re-check PA302/DB101)",
					fmtDur(b.Idle-margin(b.Idle)), what, fmtDur(b.Idle*9/10))))
		}
	}
	return out
}

func evalPA302(in *Input) []Finding {
	var out []Finding
	for _, c := range in.Facts.Path.Clients {
		idle, what := poolIdleMax(c)
		if idle == 0 {
			continue
		}
		for _, r := range clientRoutes(in, c) {
			ha, ts := r.Idle()
			if ha == Infinite || idle < ha-margin(ha) {
				continue
			}
			pos := ts.Pos
			if pos.Line == 0 {
				pos = r.Front.Pos
			}
			out = append(out, in.finding(poolSev(c), pos,
				fmt.Sprintf("%s keeps connections up to %s (%s) but haproxy cuts idle sessions at %s on %s",
					clientName(c), fmtDur(idle), what, fmtDur(ha), r.Name()),
				fmt.Sprintf("set timeout client = timeout server above %s (plus margin), or bound the pool below %s", fmtDur(idle), fmtDur(ha-margin(ha)))))
		}
	}
	return out
}

// mysqlIdle is the smallest wait_timeout (interactive_timeout for an
// interactive client) over the servers of a route's backend, and the
// variable's name; ok is false without DB facts for it.
func mysqlIdle(in *Input, c config.Client, r Route) (time.Duration, string, bool) {
	servers, fs := dbServers(in, r.Back)
	var lo time.Duration = -1
	name := "wait_timeout"
	if c.Interactive {
		name = "interactive_timeout"
	}
	for _, s := range servers {
		if d, ok := secondsVar(fs[s.Name], name); ok && d > 0 && (lo < 0 || d < lo) {
			lo = d
		}
	}
	return lo, name, lo > 0
}

func evalPA303(in *Input) []Finding {
	var out []Finding
	for _, c := range in.Facts.Path.Clients {
		idle, what := poolIdleMax(c)
		if idle == 0 {
			continue
		}
		for _, r := range clientRoutes(in, c) {
			lo, name, ok := mysqlIdle(in, c, r)
			if !ok || idle < lo-margin(lo) {
				continue
			}
			out = append(out, in.finding(poolSev(c), r.Back.Pos,
				fmt.Sprintf("%s keeps connections up to %s (%s) but MySQL closes them after %s=%s on %s",
					clientName(c), fmtDur(idle), what, name, fmtDur(lo), r.Name()),
				fmt.Sprintf("bound the pool below the smallest %s, %s (minus margin)", name, fmtDur(lo))))
		}
	}
	return out
}

func evalPA304(in *Input) []Finding {
	var out []Finding
	for _, c := range in.Facts.Path.Clients {
		idle, _, hit := staleBoxes(in, c)
		if idle == 0 {
			continue
		}
		risky := len(hit) > 0
		for _, r := range clientRoutes(in, c) {
			if ha, _ := r.Idle(); ha != Infinite && idle >= ha-margin(ha) {
				risky = true
			}
			if lo, _, ok := mysqlIdle(in, c, r); ok && idle >= lo-margin(lo) {
				risky = true // PA303 (with DB facts)
			}
		}
		if !risky {
			continue
		}
		pos := pathPos(in, c)
		if mitigated(c) {
			out = append(out, in.finding(SevInfo, pos,
				clientName(c)+" validates connections at checkout (pre-ping/health checks): stale ones are replaced, so PA301-PA303 are warnings; a query in flight can still be lost",
				"fix the idle bounds anyway (PA301-PA303)"))
		} else {
			out = append(out, in.finding(SevWarning, pos,
				clientName(c)+" does not validate connections at checkout: every stale pooled connection surfaces as an application error",
				"enable pool_pre_ping / CONN_HEALTH_CHECKS / JDBC4 validation, and fix the idle bounds (PA301-PA303)"))
		}
	}
	return out
}

func evalPA305(in *Input) []Finding {
	var out []Finding
	for _, c := range in.Facts.Path.Clients {
		if !c.SoKeepalive {
			continue // the keepalive-off case is PA301's
		}
		ka, _ := refresh(in, c)
		pos := pathPos(in, c)
		for _, b := range boxes(in.Facts, "client") {
			if b.Idle == 0 || ka < b.Idle-margin(b.Idle) {
				continue
			}
			out = append(out, in.finding(SevError, pos,
				fmt.Sprintf("%s relies on TCP keepalive (first probe after %s) but %s (%s) drops idle sessions after %s: an idle worker hangs until tcp_retries2 (~924.6 s)",
					clientName(c), fmtDur(ka), b.Name, b.Kind, fmtDur(b.Idle)),
				fmt.Sprintf("set tcp_keepalive_time below %s on the app host, raise the TTL above %s, or ping at the application level", fmtDur(b.Idle-margin(b.Idle)), fmtDur(ka))))
		}
	}
	return out
}

// evalPA306 explains the severity raised on PA301 and KN202 findings whose
// middlebox drops idle sessions silently.
func evalPA306(in *Input) []Finding {
	var out []Finding
	for _, c := range in.Facts.Path.Clients {
		_, _, hit := staleBoxes(in, c)
		pos := pathPos(in, c)
		for _, b := range hit {
			if b.Reset {
				continue
			}
			out = append(out, in.finding(SevWarning, pos,
				fmt.Sprintf("%s (%s) drops idle sessions silently (no reset): %s hangs until a timeout instead of failing fast; PA301 is raised one severity", b.Name, b.Kind, clientName(c)),
				"enable reset on idle timeout on the middlebox (e.g. Azure \"TCP reset on idle\"), and fix PA301"))
		}
	}
	for _, h := range ttlHits(in) {
		if h.b.Reset {
			continue
		}
		out = append(out, in.finding(SevWarning, h.pos,
			fmt.Sprintf("%s (%s) drops idle sessions silently (no reset): clients of %s hang until a timeout instead of failing fast; KN202 is raised one severity", h.b.Name, h.b.Kind, h.r.Name()),
			"enable reset on idle timeout on the middlebox (e.g. Azure \"TCP reset on idle\"), and fix KN202"))
	}
	return out
}

func evalPA307(in *Input) []Finding {
	var out []Finding
	for _, c := range in.Facts.Path.Clients {
		idle, what := poolIdleMax(c)
		every, tcpOnly := refresh(in, c)
		if idle == 0 || every == 0 || !tcpOnly {
			continue
		}
		pos := pathPos(in, c)
		for _, b := range boxes(in.Facts, "") {
			if !b.L7 || b.Idle == 0 || b.Idle >= idle {
				continue
			}
			out = append(out, in.finding(SevWarning, pos,
				fmt.Sprintf("%s (%s, L7) idles out after %s < %s %s, and TCP keepalive probes do not reset an L7 idle timer", b.Name, b.Kind, fmtDur(b.Idle), clientName(c), fmtDur(idle)+" ("+what+")"),
				"ping at the application level, or bound the pool below the balancer's idle timeout"))
		}
	}
	return out
}
