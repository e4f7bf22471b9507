package validate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/haguard/haguard/config"
)

// Rule family: kernel facts (KN200-KN204, RULES.md §3.3): sysctls read in
// haproxy's network namespace, compared with the declared path.

func kernelRules() []Rule {
	return []Rule{
		{ID: "KN200", Severity: SevWarning, Title: "Kernel fact could not be read", Needs: NeedsKernel, Eval: evalKN200},
		{ID: "KN201", Severity: SevError, Title: "Keepalive fires after the middlebox forgets", Needs: NeedsKernel | NeedsPath, Eval: evalKN201},
		{ID: "KN202", Severity: SevWarning, Title: "Keepalive off and path TTL below haproxy's idle timeout", Needs: NeedsPath, Eval: evalKN202},
		{ID: "KN203", Severity: SevInfo, Title: "Slow dead-peer detection", Needs: NeedsKernel, Eval: evalKN203},
		{ID: "KN204", Severity: SevWarning, Title: "Conntrack/IPVS shorter than HAProxy idle", Needs: NeedsPath, Eval: evalKN204},
	}
}

// kernelErrKey matches facts.KernelErrKey (validate cannot import facts).
const kernelErrKey = "haguard.error"

// sysctl reads a numeric sysctl; ok is false when absent.
func sysctl(in *Input, name string) (int64, bool) {
	if in.Facts.Kernel == nil {
		return 0, false
	}
	v, ok := in.Facts.Kernel.Sysctls[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return n, err == nil
}

func sysctlSeconds(in *Input, name string, def time.Duration) (time.Duration, bool) {
	if n, ok := sysctl(in, name); ok {
		return time.Duration(n) * time.Second, true
	}
	return def, false
}

// margin is RULES.md §2's: max(5 s, 5 % of the compared limit).
func margin(limit time.Duration) time.Duration { return max(5*time.Second, limit/20) }

// box is a declared middlebox with its kind's defaults applied.
type box struct {
	Name, Kind, Hop string
	Idle            time.Duration // 0 = unknown
	L7, Reset       bool
}

func boxes(f *Facts, hop string) []box {
	if f.Path == nil {
		return nil
	}
	var out []box
	for _, m := range f.Path.Middleboxes {
		if hop != "" && m.Hop != hop {
			continue
		}
		def := config.MiddleboxDefaults[m.Kind]
		b := box{Name: m.Name, Kind: m.Kind, Hop: m.Hop, Idle: def.Idle, L7: def.L7, Reset: def.ResetOnTimeout}
		if m.IdleTimeout != nil {
			if m.IdleTimeout.IsUnlimited() {
				b.Idle = 0
			} else {
				b.Idle = m.IdleTimeout.D()
			}
		}
		if m.L7 != nil {
			b.L7 = *m.L7
		}
		if m.ResetOnTimeout != nil {
			b.Reset = *m.ResetOnTimeout
		}
		if b.Name == "" {
			b.Name = b.Kind
		}
		out = append(out, b)
	}
	return out
}

// kaFirst is KA_first for a side of p: its *tcpka-idle, else the kernel's
// tcp_keepalive_time (default 7200 s).
func kaFirst(in *Input, p *Proxy, side string) (time.Duration, string) {
	knob := "srvtcpka-idle"
	if side == "client" {
		knob = "clitcpka-idle"
	}
	if t := p.EffKA(knob); t.Set() {
		return t.Time.D, knob
	}
	d, read := sysctlSeconds(in, "net.ipv4.tcp_keepalive_time", 7200*time.Second)
	if read {
		return d, "tcp_keepalive_time"
	}
	return d, "tcp_keepalive_time (default)"
}

func evalKN200(in *Input) []Finding {
	msg, ok := in.Facts.Kernel.Sysctls[kernelErrKey]
	if !ok {
		return nil
	}
	return []Finding{in.finding(SevWarning, in.configPos(),
		"cannot read kernel facts: "+msg+"; the KN rules used kernel defaults",
		"run haguard where it can read /proc/sys in haproxy's network namespace")}
}

func sideProxy(r Route, side string) *Proxy {
	if side == "client" {
		return r.Front
	}
	return r.Back
}

func evalKN201(in *Input) []Finding {
	var out []Finding
	seen := map[string]bool{}
	for _, r := range tcpRoutes(in) {
		for _, side := range []string{"client", "server"} {
			p := sideProxy(r, side)
			opt, on := kaOn(p, side)
			if !on {
				continue
			}
			first, src := kaFirst(in, p, side)
			for _, b := range boxes(in.Facts, side) {
				if b.L7 || b.Idle == 0 || first < b.Idle-margin(b.Idle) {
					continue
				}
				key := p.Name + side + b.Name
				if seen[key] {
					continue
				}
				seen[key] = true
				out = append(out, in.finding(SevError, opt.Pos,
					fmt.Sprintf("%s keepalive on %s '%s' first probes after %s=%s, but %s (%s) forgets idle sessions after %s on the %s hop",
						side, p.Kind, p.Name, src, fmtDur(first), b.Name, b.Kind, fmtDur(b.Idle), side),
					fmt.Sprintf("set %s below %s (e.g. %s), or raise the middlebox's idle timeout above %s",
						map[string]string{"client": "clitcpka-idle", "server": "srvtcpka-idle"}[side],
						fmtDur(b.Idle-margin(b.Idle)), fmtDur(b.Idle*4/5), fmtDur(first))))
			}
		}
	}
	return out
}

// ttlHit is one KN202 case: a side without keepalive whose hop has a
// middlebox that forgets idle sessions before haproxy does.
type ttlHit struct {
	r    Route
	side string
	p    *Proxy
	b    box
	idle time.Duration
	pos  Pos
}

// ttlHits are KN202's cases, once per proxy, side and middlebox; PA306
// reads them too.
func ttlHits(in *Input) []ttlHit {
	var out []ttlHit
	seen := map[string]bool{}
	for _, r := range tcpRoutes(in) {
		idle, ts := r.Idle()
		for _, side := range []string{"client", "server"} {
			p := sideProxy(r, side)
			if _, on := kaOn(p, side); on {
				continue
			}
			for _, b := range boxes(in.Facts, side) {
				if b.Idle == 0 || b.Idle >= idle || seen[p.Name+side+b.Name] {
					continue
				}
				seen[p.Name+side+b.Name] = true
				pos := ts.Pos
				if pos.Line == 0 {
					pos = p.Pos
				}
				out = append(out, ttlHit{r: r, side: side, p: p, b: b, idle: idle, pos: pos})
			}
		}
	}
	return out
}

// evalKN202 is a warning, raised to an error when the middlebox drops
// silently (PA306: a hang instead of a reset).
func evalKN202(in *Input) []Finding {
	var out []Finding
	for _, h := range ttlHits(in) {
		how, sev := "dropped silently", raise(SevWarning)
		if h.b.Reset {
			how, sev = "reset", SevWarning
		}
		out = append(out, in.finding(sev, h.pos,
			fmt.Sprintf("sessions idle longer than %s are %s by %s (%s) on the %s hop; haproxy keeps them for %s (%s), with no keepalive on that side",
				fmtDur(h.b.Idle), how, h.b.Name, h.b.Kind, h.side, fmtDur(h.idle), h.r.Name()),
			fmt.Sprintf("enable option %s with %s below %s, or lower haproxy's idle timeout (timeout client/server/tunnel) below %s",
				map[string]string{"client": "clitcpka", "server": "srvtcpka"}[h.side],
				map[string]string{"client": "clitcpka-idle", "server": "srvtcpka-idle"}[h.side], fmtDur(h.b.Idle), fmtDur(h.b.Idle))))
	}
	return out
}

func evalKN203(in *Input) []Finding {
	n, ok := sysctl(in, "net.ipv4.tcp_retries2")
	if !ok || n < 15 {
		return nil
	}
	var out []Finding
	seen := map[*Proxy]bool{}
	for _, r := range tcpRoutes(in) {
		idle, _ := r.Idle()
		if seen[r.Back] || !isDB(r.Back) || idle < 10*time.Minute {
			continue
		}
		seen[r.Back] = true
		hasUT := false
		for _, s := range r.Back.Servers {
			if _, ok := r.Back.ServerParam(s, "tcp-ut"); ok {
				hasUT = true
			}
		}
		if hasUT {
			continue
		}
		out = append(out, in.finding(SevInfo, r.Back.Pos,
			fmt.Sprintf("tcp_retries2=%d: a dead %s server with unacknowledged data is detected only after at least 924.6 s on %s (sessions idle up to %s), and no server has tcp-ut", n, dbName(r.Back), r.Name(), fmtDur(idle)),
			"set `default-server tcp-ut 30s` on the DB backend, or lower net.ipv4.tcp_retries2 to 5–8"))
	}
	return out
}

// evalKN204: NAT/conntrack/IPVS state shorter than haproxy's idle, with no
// keepalive refreshing it earlier.
func evalKN204(in *Input) []Finding {
	var out []Finding
	for _, r := range tcpRoutes(in) {
		idle, ts := r.Idle()
		for _, side := range []string{"client", "server"} {
			p := sideProxy(r, side)
			for _, b := range boxes(in.Facts, side) {
				switch b.Kind {
				case "conntrack", "kube-proxy", "swarm-ipvs":
				default:
					continue
				}
				ttl := b.Idle
				if b.Kind == "conntrack" {
					if d, ok := sysctlSeconds(in, "net.netfilter.nf_conntrack_tcp_timeout_established", 0); ok {
						ttl = d
					}
				}
				if ttl == 0 || idle <= ttl {
					continue
				}
				if _, on := kaOn(p, side); on {
					if first, _ := kaFirst(in, p, side); first < ttl {
						continue
					}
				}
				pos := ts.Pos
				if pos.Line == 0 {
					pos = p.Pos
				}
				out = append(out, in.finding(SevWarning, pos,
					fmt.Sprintf("%s (%s) forgets established flows after %s, but haproxy keeps idle sessions for %s (%s)", b.Name, b.Kind, fmtDur(ttl), fmtDur(idle), r.Name()),
					fmt.Sprintf("enable keepalive on the %s side with an idle below %s, or lower haproxy's idle timeout below it", side, fmtDur(ttl))))
			}
		}
	}
	return out
}
