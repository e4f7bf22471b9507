package validate

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Rule family: health checks (HA008, HA009, HA011, HA012).

func checkRules() []Rule {
	return []Rule{
		{ID: "HA008", Severity: SevWarning, Title: "check timeout ≥ server timeout", Eval: evalHA008},
		{ID: "HA009", Severity: SevInfo, Title: "Failure detection slower than request timeout", Eval: evalHA009},
		{ID: "HA011", Severity: SevError, Title: "mysql-check on a Galera backend", Eval: evalHA011},
		{ID: "HA012", Severity: SevWarning, Title: "httpchk on Galera without the clustercheck port", Eval: evalHA012},
	}
}

const (
	defaultInter = 2 * time.Second
	defaultFall  = 3
)

// checked reports whether health checks run on s.
func (p *Proxy) checked(s Server) bool {
	if _, off := s.Params.Get("no-check"); off {
		return false
	}
	_, on := p.ServerParam(s, "check")
	return on
}

// inter is the server's check interval and where it comes from (the
// server line when it is the 2s default).
func (p *Proxy) inter(s Server) (time.Duration, Pos, bool) {
	if d, prm, ok := p.ServerTime(s, "inter"); ok {
		return d, prm.Pos, true
	}
	return defaultInter, s.Pos, false
}

func backendsWithChecks(in *Input) []*Proxy {
	var out []*Proxy
	for _, p := range in.proxies() {
		if !p.HasBackend() {
			continue
		}
		for _, s := range p.Servers {
			if p.checked(s) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// evalHA008 reports a check timeout at or above the server timeout. When
// both come from the same lines for several backends (a defaults
// section), it says so once, naming them, at the check timeout's line.
func evalHA008(in *Input) []Finding {
	type group struct {
		f     Finding
		names []string
	}
	var groups []*group
	byLine := map[[2]Pos]*group{}
	add := func(at, srvAt Pos, p *Proxy, mk func(names string) Finding) {
		k := [2]Pos{at, srvAt}
		g := byLine[k]
		if g == nil {
			g = &group{}
			byLine[k] = g
			groups = append(groups, g)
		}
		g.names = append(g.names, p.Kind.quoted(p.Name))
		g.f = mk(strings.Join(g.names, ", "))
	}
	for _, p := range backendsWithChecks(in) {
		srv := p.EffTimeout("server")
		if !srv.Set() {
			continue
		}
		if tc := p.EffTimeout("check"); tc.Set() {
			if tc.Time.D >= srv.Time.D {
				add(tc.Pos, srv.Pos, p, func(names string) Finding {
					f := in.finding(SevWarning, tc.Pos,
						fmt.Sprintf("timeout check %s ≥ timeout server %s in %s; HAProxy's doc says it \"should be smaller than timeout server\"",
							FormatDuration(tc.Time.D), FormatDuration(srv.Time.D), names),
						"lower the check timeout below `timeout server` (e.g. `timeout check 5s`)")
					f.Key = "timeout check"
					return f
				})
			}
			continue
		}
		var worst time.Duration
		var at Pos
		for _, s := range p.Servers {
			if !p.checked(s) {
				continue
			}
			if d, pos, _ := p.inter(s); d > worst {
				worst, at = d, pos
			}
		}
		if worst >= srv.Time.D {
			add(at, srv.Pos, p, func(names string) Finding {
				f := in.finding(SevWarning, at,
					fmt.Sprintf("check timeout %s (inter, as no timeout check is set) ≥ timeout server %s in %s; HAProxy's doc says it \"should be smaller than timeout server\"",
						FormatDuration(worst), FormatDuration(srv.Time.D), names),
					"set `timeout check` below `timeout server` (e.g. 5s), or lower `inter`")
				f.Key = "inter"
				return f
			})
		}
	}
	out := make([]Finding, len(groups))
	for i, g := range groups {
		out[i] = g.f
	}
	return out
}

// evalHA009 estimates how long a dead server keeps getting new sessions:
// the first failing check starts at the next `inter`, the fall-1
// following ones every `fastinter`, and the last one needs the check
// timeout to fail: inter + (fall-1)×fastinter + check timeout, where the
// check timeout is `timeout check` when set, else `inter`. With fastinter
// unset this is RULES.md's fall×inter + check timeout; with fastinter
// set, RULES.md's fall×fastinter undercounts the first interval
// (docs/rules.md). One finding per backend: servers that share their
// check settings share a line of the formula.
func evalHA009(in *Input) []Finding {
	var out []Finding
	for _, p := range backendsWithChecks(in) {
		srv := p.EffTimeout("server")
		if !srv.Set() {
			continue
		}
		type group struct {
			detect  time.Duration
			formula string
			pos     Pos
			names   []string
		}
		var groups []*group
		var byFormula map[string]*group
		checked := 0
		for _, s := range p.Servers {
			if !p.checked(s) {
				continue
			}
			checked++
			inter, _, _ := p.inter(s)
			fast := inter
			if d, _, ok := p.ServerTime(s, "fastinter"); ok {
				fast = d
			}
			fall := defaultFall
			if prm, ok := p.ServerParam(s, "fall"); ok {
				if n, ok := bareDigits(prm.Value); ok && n > 0 && n < 1000 {
					fall = int(n)
				}
			}
			tc, how := inter, "inter, as no timeout check is set"
			if t := p.EffTimeout("check"); t.Set() {
				tc, how = t.Time.D, "timeout check"
			}
			detect := inter + time.Duration(fall-1)*fast + tc
			if detect < srv.Time.D {
				continue
			}
			formula := fmt.Sprintf("inter %s + %d × fastinter %s + check timeout %s (%s)",
				FormatDuration(inter), fall-1, FormatDuration(fast), FormatDuration(tc), how)
			g := byFormula[formula]
			if g == nil {
				if byFormula == nil {
					byFormula = map[string]*group{}
				}
				g = &group{detect: detect, formula: formula, pos: s.Pos}
				byFormula[formula] = g
				groups = append(groups, g)
			}
			g.names = append(g.names, s.Name)
		}
		if len(groups) == 0 {
			continue
		}
		slices.SortStableFunc(groups, func(a, b *group) int { return cmp.Compare(b.detect, a.detect) })
		var parts []string
		n := 0
		for _, g := range groups {
			n += len(g.names)
			parts = append(parts, fmt.Sprintf("%s for %s (%s)", FormatDuration(g.detect), strings.Join(g.names, ", "), g.formula))
		}
		f := in.finding(SevInfo, groups[0].pos,
			fmt.Sprintf("a server of %s '%s' that stops answering keeps receiving new sessions for up to %s, at least timeout server %s (%d of %d checked servers): %s",
				p.Kind, p.Name, FormatDuration(groups[0].detect), FormatDuration(srv.Time.D), n, checked, strings.Join(parts, "; ")),
			"detect faster: `fastinter 1s`, a lower `fall`, and `on-marked-down shutdown-sessions`")
		f.Key = p.Section()
		out = append(out, f)
	}
	return out
}

// galeraName is compiled on first use, not at every command's start-up.
var galeraName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)galera|pxc|wsrep|xtradb`) })

// galera says whether p is a Galera backend and how sure we are: declared
// (haguard.yaml galera: true or a "# haguard:galera" tag), live (wsrep_on
// = ON on a server), or only its name. A declared galera: false wins.
func galera(p *Proxy, f *Facts) (is bool, how string, sure bool) {
	if bf, ok := f.Backends[p.Name]; ok && bf.Galera != nil {
		return *bf.Galera, "declared galera: true in haguard.yaml", true
	}
	if p.Tagged("galera") {
		return true, "tagged # haguard:galera", true
	}
	for _, sf := range f.DB[p.Name] {
		if strings.EqualFold(sf.Variables["wsrep_on"], "ON") {
			return true, "wsrep_on=ON on its servers", true
		}
	}
	if galeraName().MatchString(p.Name) {
		return true, "its name looks like Galera", false
	}
	return false, "", false
}

func evalHA011(in *Input) []Finding {
	var out []Finding
	for _, p := range in.proxies() {
		if !p.HasBackend() {
			continue
		}
		chk := p.EffCheck()
		if chk == nil || chk.Name != "mysql-check" {
			continue
		}
		is, how, sure := galera(p, in.Facts)
		if !is {
			continue
		}
		sev := SevError
		if !sure {
			sev = SevWarning
		}
		f := in.finding(sev, chk.Pos,
			fmt.Sprintf("option mysql-check on Galera %s '%s' (%s): mysql-check only parses the handshake; a Donor/Joining/non-primary node stays UP", p.Kind, p.Name, how),
			"use `option httpchk` + clustercheck: `server … check port 9200 inter 2s fall 3 rise 2`")
		f.Key = p.Section()
		out = append(out, f)
	}
	return out
}

func evalHA012(in *Input) []Finding {
	var out []Finding
	for _, p := range in.proxies() {
		if !p.HasBackend() {
			continue
		}
		chk := p.EffCheck()
		if chk == nil || chk.Name != "httpchk" {
			continue
		}
		if is, _, _ := galera(p, in.Facts); !is {
			continue
		}
		for _, s := range p.Servers {
			if !p.checked(s) {
				continue
			}
			if _, ok := p.ServerParam(s, "port"); ok {
				continue
			}
			out = append(out, in.findingKey(s.Name, SevWarning, s.Pos,
				fmt.Sprintf("option httpchk on Galera %s '%s': server '%s' has no check `port`, so the HTTP probe hits %s and every node goes DOWN",
					p.Kind, p.Name, s.Name, s.Address),
				"point the check at clustercheck: `server … check port 9200` (or `default-server port 9200`)"))
		}
	}
	return out
}
