package validate

import (
	"fmt"
	"strings"
	"time"
)

// Rule family: TCP keepalive and dead-peer detection (HA013, HA014, HA015).

func keepaliveRules() []Rule {
	return []Rule{
		{ID: "HA013", Severity: SevWarning, Title: "Long-idle tcp backend without TCP keepalive", Eval: evalHA013},
		{ID: "HA014", Severity: SevInfo, Title: "Keepalive on but idle left to the kernel", Eval: evalHA014},
		{ID: "HA015", Severity: SevInfo, Title: "No server tcp-ut on long-idle DB backend", Eval: evalHA015},
	}
}

// kaOn reports whether SO_KEEPALIVE is set on a side of p: "client" needs
// tcpka or clitcpka, "server" tcpka or srvtcpka (tcpka inherited by a
// frontend covers the client side only, by a backend the server side only).
// HAProxy keeps one bit per side: `option tcpka` sets both bits and
// `no option tcpka` clears both, so the last line of a section that touches
// the side's bit decides, else the defaults chain's value. The Option
// returned is that line.
func kaOn(p *Proxy, side string) (Option, bool) {
	names := [2]string{"tcpka", "srvtcpka"}
	if side == "client" {
		names[1] = "clitcpka"
	}
	for q := p; q != nil; q = q.Defaults {
		last, found := Option{}, false
		for _, n := range names {
			if o, ok := q.Options[n]; ok && (!found || o.Pos.Line > last.Pos.Line) {
				last, found = o, true
			}
		}
		if found {
			if !last.On {
				return Option{}, false
			}
			return last, true
		}
	}
	return Option{}, false
}

// pathIdleMin is the smallest declared middlebox idle timeout on a hop
// ("client" or "server"); ok is false when none is declared. A middlebox
// declared `idle_timeout: unlimited` has none (boxes gives it 0).
func pathIdleMin(f *Facts, hop string) (time.Duration, string, bool) {
	var best time.Duration
	var name string
	for _, b := range boxes(f, hop) {
		if b.Idle > 0 && (best == 0 || b.Idle < best) {
			best, name = b.Idle, b.Name
		}
	}
	return best, name, best > 0
}

// evalHA013: a session idle longer than a middlebox's idle timeout is
// forgotten by it, unless TCP keepalive refreshes its state. On a hop
// with declared middleboxes (haguard.yaml path.middleboxes), a side of a
// route that idles longer than the shortest of them, without keepalive,
// is a warning, once per proxy side (evalHA013Declared). On a hop with
// none declared, whether anything stands in between is unknown: one info
// per route whose idle time exceeds 5 minutes (a common firewall and
// load-balancer default) and that lacks keepalive on such a side.
func evalHA013(in *Input) []Finding {
	out := evalHA013Declared(in)
	for _, r := range tcpRoutes(in) {
		idle, _ := r.Idle()
		if idle <= fiveMinutes {
			continue
		}
		var sides []string
		for _, side := range []string{"client", "server"} {
			if _, _, declared := pathIdleMin(in.Facts, side); declared {
				continue
			}
			if _, on := kaOn(sideProxy(r, side), side); !on {
				sides = append(sides, side)
			}
		}
		if len(sides) == 0 {
			continue
		}
		at := r.Back
		if len(sides) == 1 && sides[0] == "client" {
			at = r.Front
		}
		opts := make([]string, len(sides))
		knobs := make([]string, len(sides))
		for i, side := range sides {
			pre := map[string]string{"client": "clitcpka", "server": "srvtcpka"}[side]
			opts[i], knobs[i] = "`option "+pre+"`", "`"+pre+"-idle 240s`"
		}
		f := in.finding(SevInfo, at.Pos,
			fmt.Sprintf("sessions may stay idle %s on %s with no TCP keepalive on the %s side: a firewall, NAT or load balancer in between would forget them silently (declare the middleboxes in haguard.yaml path: to check them)",
				idleFor(idle), r.Name(), strings.Join(sides, " and ")),
			fmt.Sprintf("add %s with an idle below the shortest middlebox idle timeout on the path (e.g. %s), or declare the path if nothing stands in between",
				strings.Join(opts, " and "), strings.Join(knobs, " and ")))
		f.Key = r.Name()
		out = append(out, f)
	}
	return out
}

func evalHA013Declared(in *Input) []Finding {
	type key struct {
		p    *Proxy
		side string
	}
	type hit struct {
		idle  time.Duration
		box   string
		limit time.Duration
		route string
	}
	worst := map[key]*hit{}
	var order []key
	for _, r := range tcpRoutes(in) {
		idle, _ := r.Idle()
		for _, side := range []string{"client", "server"} {
			limit, name, ok := pathIdleMin(in.Facts, side)
			p := sideProxy(r, side)
			if !ok || idle <= limit {
				continue
			}
			if _, on := kaOn(p, side); on {
				continue
			}
			k := key{p, side}
			h := worst[k]
			if h == nil {
				h = &hit{}
				worst[k] = h
				order = append(order, k)
			}
			if idle > h.idle {
				*h = hit{idle: idle, box: name, limit: limit, route: r.Name()}
			}
		}
	}
	var out []Finding
	for _, k := range order {
		h := worst[k]
		what := "idle sessions"
		if k.side == "server" && isDB(k.p) {
			what = "idle " + dbName(k.p) + " sessions"
		}
		opt, knob := "srvtcpka", "srvtcpka-idle"
		if k.side == "client" {
			opt, knob = "clitcpka", "clitcpka-idle"
		}
		f := in.finding(SevWarning, k.p.Pos,
			fmt.Sprintf("%s last up to %s (%s) but %s forgets idle sessions after %s on the %s hop: %s '%s' has no option tcpka/%s",
				what, fmtDur(h.idle), h.route, h.box, fmtDur(h.limit), k.side, k.p.Kind, k.p.Name, opt),
			fmt.Sprintf("add `option %s` with `%s` below %s (e.g. %s)", opt, knob, fmtDur(h.limit), FormatDuration(h.limit*4/5)))
		f.Key = k.side + " side"
		out = append(out, f)
	}
	return out
}

// evalHA014 reports, once per option line and proxy, the sides whose
// keepalive is on with the first probe left to the kernel: `option
// tcpka` on a listen covers both sides in one line, and reads as one
// finding. Only sides whose tcp sessions may idle over 5 minutes count:
// when haproxy cuts idle sessions sooner, the keepalive's timing does
// not matter.
func evalHA014(in *Input) []Finding {
	// longIdle has bit 1 for a proxy's client side, 2 for its server side.
	longIdle := map[*Proxy]uint8{}
	bit := map[string]uint8{"client": 1, "server": 2}
	for _, r := range tcpRoutes(in) {
		if idle, _ := r.Idle(); idle > fiveMinutes {
			longIdle[r.Front] |= 1
			longIdle[r.Back] |= 2
		}
	}
	var out []Finding
	for _, p := range in.proxies() {
		var sides []string
		var knobs []string
		var at Option
		for _, side := range []string{"client", "server"} {
			if longIdle[p]&bit[side] == 0 {
				continue
			}
			o, on := kaOn(p, side)
			if !on {
				continue
			}
			pre := "srvtcpka"
			if side == "client" {
				pre = "clitcpka"
			}
			if p.EffKA(pre + "-idle").Set() {
				continue
			}
			if len(sides) > 0 && o.Pos != at.Pos {
				out = append(out, ha014(in, p, at, sides, knobs))
				sides, knobs = nil, nil
			}
			at = o
			sides = append(sides, side)
			knobs = append(knobs, pre)
		}
		if len(sides) > 0 {
			out = append(out, ha014(in, p, at, sides, knobs))
		}
	}
	return out
}

func ha014(in *Input, p *Proxy, o Option, sides, knobs []string) Finding {
	idles := make([]string, len(knobs))
	fix := make([]string, len(knobs))
	for i, k := range knobs {
		idles[i] = k + "-idle"
		fix[i] = fmt.Sprintf("`%s-idle 240s`, `%s-intvl 30s`, `%s-cnt 4`", k, k, k)
	}
	f := in.finding(SevInfo, o.Pos,
		fmt.Sprintf("option %s is on for the %s side of %s '%s' but %s unset: the first probe leaves after the kernel's tcp_keepalive_time (7200 s by default), later than most firewalls forget an idle session",
			o.Name, strings.Join(sides, " and "), p.Kind, p.Name, strings.Join(idles, " and ")+map[bool]string{true: " is", false: " are"}[len(idles) == 1]),
		strings.Join(fix, "; ")+" (below every middlebox idle timeout)")
	f.Key = p.Section() + " " + strings.Join(sides, "+")
	return f
}

func evalHA015(in *Input) []Finding {
	worst := map[*Proxy]time.Duration{}
	var order []*Proxy
	for _, r := range tcpRoutes(in) {
		if !isDB(r.Back) {
			continue
		}
		idle, _ := r.Idle()
		if idle < tenMinutes {
			continue
		}
		if _, seen := worst[r.Back]; !seen {
			order = append(order, r.Back)
		}
		worst[r.Back] = max(worst[r.Back], idle)
	}
	var out []Finding
	for _, p := range order {
		missing := 0
		for _, s := range p.Servers {
			if _, ok := p.ServerParam(s, "tcp-ut"); !ok {
				missing++
			}
		}
		if missing == 0 {
			continue
		}
		f := in.finding(SevInfo, p.Pos,
			fmt.Sprintf("sessions may stay idle %s on %s %s '%s' and %d of %d servers have no tcp-ut: a dead server with unacknowledged data is detected only after tcp_retries2 (at least 924.6 s)",
				idleFor(worst[p]), dbName(p), p.Kind, p.Name, missing, len(p.Servers)),
			"`default-server tcp-ut 30s` in the backend")
		f.Key = p.Section()
		out = append(out, f)
	}
	return out
}
