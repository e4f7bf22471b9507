package validate

import (
	"fmt"
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

func evalHA013(in *Input) []Finding {
	type key struct {
		p    *Proxy
		side string
	}
	worst := map[key]time.Duration{}
	var order []key
	for _, r := range tcpRoutes(in) {
		idle, _ := r.Idle()
		for _, side := range []string{"client", "server"} {
			limit := fiveMinutes
			if d, _, ok := pathIdleMin(in.Facts, side); ok {
				limit = d
			}
			p := r.Back
			if side == "client" {
				p = r.Front
			}
			if idle <= limit {
				continue
			}
			if _, on := kaOn(p, side); on {
				continue
			}
			k := key{p, side}
			if _, seen := worst[k]; !seen {
				order = append(order, k)
			}
			worst[k] = max(worst[k], idle)
		}
	}
	var out []Finding
	for _, k := range order {
		what := "idle sessions"
		if k.side == "server" && isDB(k.p) {
			what = "idle DB sessions"
		}
		opt, knob := "srvtcpka", "srvtcpka-idle"
		if k.side == "client" {
			opt, knob = "clitcpka", "clitcpka-idle"
		}
		out = append(out, in.finding(SevWarning, k.p.Pos,
			fmt.Sprintf("%s rely on every middlebox keeping state for %s: %s '%s' has no option tcpka/%s (%s side)",
				what, fmtDur(worst[k]), k.p.Kind, k.p.Name, opt, k.side),
			fmt.Sprintf("add `option %s` with an explicit `%s` below the shortest middlebox idle timeout (e.g. 240s)", opt, knob)))
	}
	return out
}

func evalHA014(in *Input) []Finding {
	var out []Finding
	for _, p := range in.proxies() {
		for _, side := range []string{"client", "server"} {
			if side == "client" && !p.HasFrontend() || side == "server" && !p.HasBackend() {
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
			out = append(out, in.finding(SevInfo, o.Pos,
				fmt.Sprintf("option %s is on for the %s side of %s '%s' but %s-idle is unset: first probe after kernel tcp_keepalive_time (default 7200 s)",
					o.Name, side, p.Kind, p.Name, pre),
				fmt.Sprintf("`%s-idle 240s`, `%s-intvl 30s`, `%s-cnt 4` (below every middlebox idle timeout)", pre, pre, pre)))
		}
	}
	return out
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
		out = append(out, in.finding(SevInfo, p.Pos,
			fmt.Sprintf("HA_idle %s on DB %s '%s' and %d of %d servers have no tcp-ut: a dead DB peer with unACKed data is detected only after tcp_retries2 (≥924.6 s)",
				fmtDur(worst[p]), p.Kind, p.Name, missing, len(p.Servers)),
			"`default-server tcp-ut 30s` in the backend"))
	}
	return out
}
