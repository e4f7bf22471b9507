package validate

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rule family: live database facts (DB100-DB105, RULES.md §3.2). The
// facts come from validate/facts: per backend, per server, the global
// variables and wsrep status of a MySQL-like server.

func dbRules() []Rule {
	return []Rule{
		{ID: "DB100", Severity: SevWarning, Title: "Live DB fact could not be read", Needs: NeedsDB, Eval: evalDB100},
		{ID: "DB101", Severity: SevWarning, Title: "HAProxy idle longer than MySQL's", Needs: NeedsDB, Eval: evalDB101},
		{ID: "DB102", Severity: SevError, Title: "Divergent timeouts inside one backend", Needs: NeedsDB, Eval: evalDB102},
		{ID: "DB103", Severity: SevWarning, Title: "Tiny wait_timeout behind a pool", Needs: NeedsDB, Eval: evalDB103},
		{ID: "DB104", Severity: SevError, Title: "Galera node in rotation but not Synced", Needs: NeedsDB, Eval: evalDB104},
		{ID: "DB105", Severity: SevWarning, Title: "Timeout server shorter than allowed query runtime", Needs: NeedsDB, Eval: evalDB105},
	}
}

// dbServers returns p's servers that have facts, in config order.
func dbServers(in *Input, p *Proxy) ([]Server, map[string]DBServerFacts) {
	fs := in.Facts.DB[p.Name]
	var out []Server
	for _, s := range p.Servers {
		if _, ok := fs[s.Name]; ok {
			out = append(out, s)
		}
	}
	return out, fs
}

// secondsVar reads a variable in seconds; ok is false when absent or not a number.
func secondsVar(f DBServerFacts, name string) (time.Duration, bool) {
	v, ok := f.Variables[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(n * float64(time.Second)), true
}

func evalDB100(in *Input) []Finding {
	var out []Finding
	for _, p := range in.proxies() {
		servers, fs := dbServers(in, p)
		for _, s := range servers {
			if err := fs[s.Name].Err; err != nil {
				out = append(out, in.finding(SevWarning, s.Pos,
					fmt.Sprintf("cannot read live facts from %s/%s (%s): %v; the DB rules did not check it", p.Name, s.Name, s.Address, err),
					"give haguard a read-only user (haguard.yaml facts.db: user/password_file or defaults_file) that can connect from this host"))
			}
		}
	}
	return out
}

// waitLimit is the server's idle limit for the backend's clients.
func waitLimit(in *Input, p *Proxy, f DBServerFacts) (time.Duration, string, bool) {
	name := "wait_timeout"
	if bf, ok := in.Facts.Backends[p.Name]; ok && bf.InteractiveClients {
		name = "interactive_timeout"
	}
	d, ok := secondsVar(f, name)
	return d, name, ok
}

func evalDB101(in *Input) []Finding {
	var out []Finding
	for _, r := range tcpRoutes(in) {
		idle, ts := r.Idle()
		servers, fs := dbServers(in, r.Back)
		for _, s := range servers {
			wt, name, ok := waitLimit(in, r.Back, fs[s.Name])
			if !ok || wt <= 0 || idle <= wt {
				continue
			}
			pos := ts.Pos
			if pos.Line == 0 {
				pos = r.Back.Pos
			}
			out = append(out, in.finding(SevWarning, pos,
				fmt.Sprintf("%s/%s %s=%s is shorter than the %s haproxy keeps idle sessions on %s: MySQL closes idle sessions first, so clients get 2006 on reuse",
					r.Back.Name, s.Name, name, fmtDur(wt), fmtDur(idle), r.Name()),
				fmt.Sprintf("set timeout client = timeout server ≤ %s (%s), and keep pool idle bounds below both", fmtDur(wt), name)))
		}
	}
	return out
}

func evalDB102(in *Input) []Finding {
	var out []Finding
	for _, p := range in.proxies() {
		servers, fs := dbServers(in, p)
		if len(servers) < 2 {
			continue
		}
		for _, v := range []struct {
			name string
			sev  Severity
		}{{"wait_timeout", SevError}, {"interactive_timeout", SevError}, {"net_read_timeout", SevWarning}, {"net_write_timeout", SevWarning}} {
			var parts []string
			distinct := map[string]bool{}
			var lo time.Duration = -1
			for _, s := range servers {
				raw, ok := fs[s.Name].Variables[v.name]
				if !ok {
					continue
				}
				parts = append(parts, s.Name+"="+raw)
				distinct[raw] = true
				if d, ok := secondsVar(fs[s.Name], v.name); ok && (lo < 0 || d < lo) {
					lo = d
				}
			}
			if len(distinct) < 2 {
				continue
			}
			out = append(out, in.finding(v.sev, p.Pos,
				fmt.Sprintf("%s '%s': %s differs between servers: %s", p.Kind, p.Name, v.name, strings.Join(parts, " ")),
				fmt.Sprintf("make %s identical on every server (my.cnf and SET GLOBAL); until then size haproxy timeouts and pools to the minimum, %s", v.name, fmtDur(lo))))
		}
	}
	return out
}

func evalDB103(in *Input) []Finding {
	var out []Finding
	pooled := in.Facts.Path != nil && len(in.Facts.Path.Clients) > 0
	seen := map[*Proxy]bool{}
	for _, r := range tcpRoutes(in) {
		idle, _ := r.Idle()
		if seen[r.Back] || (!pooled && idle <= time.Minute) {
			continue
		}
		seen[r.Back] = true
		servers, fs := dbServers(in, r.Back)
		for _, s := range servers {
			wt, ok := secondsVar(fs[s.Name], "wait_timeout")
			if !ok || wt <= 0 || wt >= time.Minute {
				continue
			}
			out = append(out, in.finding(SevWarning, s.Pos,
				fmt.Sprintf("%s/%s wait_timeout=%s behind pooled or long-idle clients (haproxy keeps idle sessions %s): pooled connections die after %s idle",
					r.Back.Name, s.Name, fmtDur(wt), fmtDur(idle), fmtDur(wt)),
				"raise wait_timeout (default 28800 s), or bound every pool's idle time below it"))
		}
	}
	return out
}

func evalDB104(in *Input) []Finding {
	var out []Finding
	for _, p := range in.proxies() {
		servers, fs := dbServers(in, p)
		chk := p.EffCheck()
		clustercheck := chk != nil && chk.Name == "httpchk"
		for _, s := range servers {
			f := fs[s.Name]
			state, ok := f.Status["wsrep_local_state"]
			if !ok {
				continue
			}
			bad := state != "4"
			if state == "2" && in.Facts.Backends[p.Name].AvailableWhenDonor {
				bad = false
			}
			if st := f.Status["wsrep_cluster_status"]; st != "" && st != "Primary" {
				bad = true
			}
			if r := f.Status["wsrep_ready"]; r != "" && !strings.EqualFold(r, "ON") {
				bad = true
			}
			if !bad {
				continue
			}
			sev := SevError
			how := "its health check cannot see it, so it stays in rotation"
			if clustercheck {
				sev, how = SevWarning, "httpchk/clustercheck should take it out of rotation; confirm it is DOWN in the stats"
			}
			out = append(out, in.finding(sev, s.Pos,
				fmt.Sprintf("%s/%s is Galera state %s (%s, cluster %s): %s", p.Name, s.Name, state,
					f.Status["wsrep_local_state_comment"], f.Status["wsrep_cluster_status"], how),
				"use option httpchk + clustercheck (`check port 9200`), or `set server "+p.Name+"/"+s.Name+" state maint` until it is Synced"))
		}
	}
	return out
}

func evalDB105(in *Input) []Finding {
	var out []Finding
	for _, r := range tcpRoutes(in) {
		srv := r.Server()
		if !srv.Set() {
			continue
		}
		var longest time.Duration
		var why string
		if bf, ok := in.Facts.Backends[r.Back.Name]; ok && bf.LongestQuery != nil && !bf.LongestQuery.IsUnlimited() {
			longest, why = bf.LongestQuery.D(), "declared longest_query"
		}
		servers, fs := dbServers(in, r.Back)
		for _, s := range servers {
			if d, ok := secondsVar(fs[s.Name], "max_execution_time"); ok && d/1000 > longest {
				longest, why = d/1000, s.Name+" max_execution_time" // MySQL: milliseconds
			}
			if d, ok := secondsVar(fs[s.Name], "max_statement_time"); ok && d > longest {
				longest, why = d, s.Name+" max_statement_time" // MariaDB: seconds
			}
		}
		if longest == 0 || srv.Time.D >= longest {
			continue
		}
		out = append(out, in.finding(SevWarning, srv.Pos,
			fmt.Sprintf("timeout server %s < %s %s on %s: longer queries die with 2013 Lost connection during query",
				fmtDur(srv.Time.D), why, fmtDur(longest), r.Name()),
			fmt.Sprintf("raise timeout server (and client) above %s", fmtDur(longest))))
	}
	return out
}
