package validate

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Change is one semantic difference between the config that runs and a
// candidate (`haguard diff`, `reload --dry-run`): a section, bind, server,
// timeout, option, route or other line added, removed or changed, or an
// entry of a map or ACL file. Runtime says whether the running processes
// can take it without a reload; How says with which master CLI command,
// or why a reload is needed.
type Change struct {
	// Kind: section, mode, timeout, option, bind, server,
	// default-server, route, directive, map, acl.
	Kind string `json:"kind"`
	// Op: added, removed or changed.
	Op string `json:"op"`
	// Section is the section as findings name it ("backend app"); for a
	// map or ACL entry, the file.
	Section string `json:"section"`
	// Name is what changed in it: a server's or bind's name or address,
	// "timeout server", an option, a keyword, a map key.
	Name   string `json:"name"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
	// File and Line are where the candidate has it (for a removal,
	// where the running config had it).
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Runtime bool   `json:"runtime"`
	How     string `json:"how"`
}

// Change operations.
const (
	OpAdded   = "added"
	OpRemoved = "removed"
	OpChanged = "changed"
)

const needsReload = "needs a reload"

// DiffConfigs lists what changes from before (what runs) to after (the
// candidate), section by section in after's order, removed sections last.
// Only server weight, address and state, and map and ACL entries (see
// DiffMap) can be applied at runtime; everything else needs a reload.
func DiffConfigs(before, after *Config) []Change {
	bs, as := sectionsByKey(before), sectionsByKey(after)
	var out []Change
	for _, k := range as.order {
		a := as.m[k]
		b, ok := bs.m[k]
		if !ok {
			out = append(out, Change{Kind: "section", Op: OpAdded, Section: k, Name: k, After: fmt.Sprintf("%d lines", len(a.Directives)),
				File: a.Pos.File, Line: a.Pos.Line, How: needsReload + ": a new section"})
			continue
		}
		out = append(out, diffSection(k, b, a)...)
	}
	for _, k := range bs.order {
		if _, ok := as.m[k]; !ok {
			b := bs.m[k]
			out = append(out, Change{Kind: "section", Op: OpRemoved, Section: k, Name: k, Before: fmt.Sprintf("%d lines", len(b.Directives)),
				File: b.Pos.File, Line: b.Pos.Line, How: needsReload + ": a section goes away"})
		}
	}
	return out
}

type sectionSet struct {
	m     map[string]*Proxy
	order []string
}

// sectionsByKey names each section as findings do; a second unnamed
// defaults section is "defaults #2", and so on.
func sectionsByKey(c *Config) sectionSet {
	s := sectionSet{m: map[string]*Proxy{}}
	if c == nil {
		return s
	}
	unnamed := 0
	all := append(c.AllSections(), c.Others...)
	for _, p := range all {
		k := p.Section()
		if p.Kind == KindDefaults && p.Name == "" {
			if unnamed++; unnamed > 1 {
				k = fmt.Sprintf("defaults #%d", unnamed)
			}
		}
		if p.Kind == KindGlobal && len(p.Directives) == 0 {
			continue // no global section written
		}
		if _, dup := s.m[k]; dup {
			continue // haproxy refuses a duplicate name; -c says so
		}
		s.m[k] = p
		s.order = append(s.order, k)
	}
	return s
}

// handled are the keywords diffSection compares by meaning; the other
// lines are compared as written.
var handled = map[string]bool{
	"mode": true, "timeout": true, "option": true, "bind": true, "server": true, "default-server": true,
	"default_backend": true, "use_backend": true,
	"clitcpka-idle": true, "clitcpka-intvl": true, "clitcpka-cnt": true,
	"srvtcpka-idle": true, "srvtcpka-intvl": true, "srvtcpka-cnt": true,
}

func diffSection(sec string, b, a *Proxy) []Change {
	var out []Change
	add := func(c Change) {
		c.Section = sec
		if c.How == "" {
			c.How = needsReload
		}
		out = append(out, c)
	}
	if b.Mode.Value != a.Mode.Value {
		add(change("mode", "mode", b.Mode.Value, a.Mode.Value, a.Mode.Pos, b.Mode.Pos))
	}
	for _, name := range unionKeys(b.Timeouts, a.Timeouts) {
		bt, at := b.Timeouts[name], a.Timeouts[name]
		if bt.Time.Raw != at.Time.Raw {
			add(change("timeout", "timeout "+name, bt.Time.Raw, at.Time.Raw, at.Pos, bt.Pos))
		}
	}
	for _, name := range unionKeys(b.KA, a.KA) {
		bt, at := b.KA[name], a.KA[name]
		if bt.Time.Raw != at.Time.Raw {
			add(change("timeout", name, bt.Time.Raw, at.Time.Raw, at.Pos, bt.Pos))
		}
	}
	for _, name := range unionKeys(b.Options, a.Options) {
		bo, bok := b.Options[name]
		ao, aok := a.Options[name]
		if bok == aok && optionText(bo) == optionText(ao) {
			continue
		}
		add(change("option", "option "+name, optText(bo, bok), optText(ao, aok), ao.Pos, bo.Pos))
	}
	if bd, ad := paramsText(b.DefaultServer), paramsText(a.DefaultServer); bd != ad {
		add(change("default-server", "default-server", bd, ad, firstPos(a, "default-server"), firstPos(b, "default-server")))
	}
	out = append(out, diffBinds(sec, b, a)...)
	out = append(out, diffServers(sec, b, a)...)
	if br, ar := routesText(b), routesText(a); br != ar {
		add(change("route", "routes", br, ar, firstPos(a, "use_backend", "default_backend"), firstPos(b, "use_backend", "default_backend")))
	}
	for _, c := range diffLines(b, a) {
		add(c)
	}
	return out
}

// change builds a change whose op follows from which side is empty.
func change(kind, name, before, after string, apos, bpos Pos) Change {
	c := Change{Kind: kind, Name: name, Before: before, After: after, Op: OpChanged}
	switch {
	case before == "":
		c.Op = OpAdded
	case after == "":
		c.Op = OpRemoved
	}
	c.File, c.Line = apos.File, apos.Line
	if c.Op == OpRemoved || apos.Line == 0 {
		c.File, c.Line = bpos.File, bpos.Line
	}
	return c
}

func unionKeys[V any](a, b map[string]V) []string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

func optionText(o Option) string {
	s := strings.Join(o.Args, " ")
	if !o.On {
		return "no " + s
	}
	return s
}

func optText(o Option, ok bool) string {
	if !ok {
		return ""
	}
	w := "option " + o.Name
	if !o.On {
		w = "no " + w
	}
	if len(o.Args) > 0 {
		w += " " + strings.Join(o.Args, " ")
	}
	return w
}

func paramsText(ps Params) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		if p.Value == "" {
			parts = append(parts, p.Name)
		} else {
			parts = append(parts, p.Name+" "+p.Value)
		}
	}
	return strings.Join(parts, " ")
}

func routesText(p *Proxy) string {
	var parts []string
	for _, r := range p.UseBackends {
		parts = append(parts, strings.TrimSpace("use_backend "+r.Backend+" "+r.Cond))
	}
	if p.DefaultBackend != nil {
		parts = append(parts, "default_backend "+p.DefaultBackend.Backend)
	}
	return strings.Join(parts, "; ")
}

// firstPos is the first line of p whose keyword is one of kws.
func firstPos(p *Proxy, kws ...string) Pos {
	for _, d := range p.Directives {
		if len(d.Words) > 0 && slices.Contains(kws, d.Words[0]) {
			return d.Pos
		}
	}
	return Pos{}
}

func diffBinds(sec string, b, a *Proxy) []Change {
	key := func(x Bind) string { return x.Address }
	bm := map[string]Bind{}
	for _, x := range b.Binds {
		bm[key(x)] = x
	}
	am := map[string]Bind{}
	var out []Change
	for _, x := range a.Binds {
		am[key(x)] = x
		text := strings.TrimSpace(x.Address + " " + paramsText(x.Params))
		old, ok := bm[key(x)]
		switch {
		case !ok:
			out = append(out, Change{Kind: "bind", Op: OpAdded, Section: sec, Name: x.Address, After: text, File: x.Pos.File, Line: x.Pos.Line,
				How: needsReload + ": haproxy binds at start"})
		case paramsText(old.Params) != paramsText(x.Params):
			out = append(out, Change{Kind: "bind", Op: OpChanged, Section: sec, Name: x.Address,
				Before: strings.TrimSpace(old.Address + " " + paramsText(old.Params)), After: text, File: x.Pos.File, Line: x.Pos.Line, How: needsReload})
		}
	}
	for _, x := range b.Binds {
		if _, ok := am[key(x)]; !ok {
			out = append(out, Change{Kind: "bind", Op: OpRemoved, Section: sec, Name: x.Address,
				Before: strings.TrimSpace(x.Address + " " + paramsText(x.Params)), File: x.Pos.File, Line: x.Pos.Line, How: needsReload})
		}
	}
	return out
}

// runtimeParams are the server settings the master CLI can change in
// every running process: `set server` weight, addr/port and state.
var runtimeParams = map[string]bool{"weight": true, "disabled": true, "enabled": true}

func diffServers(sec string, b, a *Proxy) []Change {
	bm := map[string]Server{}
	for _, s := range b.Servers {
		bm[s.Name] = s
	}
	am := map[string]bool{}
	var out []Change
	be := strings.TrimPrefix(strings.TrimPrefix(sec, "backend "), "listen ")
	for _, s := range a.Servers {
		am[s.Name] = true
		old, ok := bm[s.Name]
		text := strings.TrimSpace(s.Address + " " + paramsText(s.Params))
		if !ok {
			out = append(out, Change{Kind: "server", Op: OpAdded, Section: sec, Name: s.Name, After: text, File: s.Pos.File, Line: s.Pos.Line,
				How: needsReload + ": a server line the running processes do not have"})
			continue
		}
		before := strings.TrimSpace(old.Address + " " + paramsText(old.Params))
		if before == text {
			continue
		}
		c := Change{Kind: "server", Op: OpChanged, Section: sec, Name: s.Name, Before: before, After: text, File: s.Pos.File, Line: s.Pos.Line}
		c.Runtime, c.How = serverRuntime(be, old, s)
		out = append(out, c)
	}
	for _, s := range b.Servers {
		if !am[s.Name] {
			out = append(out, Change{Kind: "server", Op: OpRemoved, Section: sec, Name: s.Name,
				Before: strings.TrimSpace(s.Address + " " + paramsText(s.Params)), File: s.Pos.File, Line: s.Pos.Line,
				How: needsReload + ": a server the running processes still send to"})
		}
	}
	return out
}

// serverRuntime says whether a server line's change is one the master
// CLI applies (weight, an IP address and port, maintenance), and how.
func serverRuntime(be string, old, s Server) (bool, string) {
	strip := func(ps Params) string {
		var keep Params
		for _, p := range ps {
			if !runtimeParams[p.Name] {
				keep = append(keep, p)
			}
		}
		return paramsText(keep)
	}
	if strip(old.Params) != strip(s.Params) {
		return false, needsReload + ": a server setting other than weight, address or state"
	}
	var cmds []string
	id := be + "/" + s.Name
	if old.Address != s.Address {
		ip, err := netip.ParseAddr(strings.Trim(s.Host(), "[]"))
		if err != nil || s.Port() == "" && old.Port() != "" {
			return false, needsReload + ": the new address is not an IP address and port (set server addr takes only those)"
		}
		cmd := fmt.Sprintf("set server %s addr %s", id, ip)
		if p := s.Port(); p != "" {
			cmd += " port " + p
		}
		cmds = append(cmds, cmd)
	}
	if ow, nw := weightOf(old), weightOf(s); ow != nw {
		cmds = append(cmds, fmt.Sprintf("set server %s weight %s", id, nw))
	}
	if od, nd := disabled(old), disabled(s); od != nd {
		state := "ready"
		if nd {
			state = "maint"
		}
		cmds = append(cmds, fmt.Sprintf("set server %s state %s", id, state))
	}
	return true, strings.Join(cmds, "; ")
}

func weightOf(s Server) string {
	if p, ok := s.Params.Get("weight"); ok {
		return p.Value
	}
	return "1" // haproxy's default
}

func disabled(s Server) bool {
	for i := len(s.Params) - 1; i >= 0; i-- {
		switch s.Params[i].Name {
		case "disabled":
			return true
		case "enabled":
			return false
		}
	}
	return false
}

// diffLines compares the lines diffSection does not read by meaning, as
// written, keyword by keyword: a keyword on one line each side that
// differs is changed; otherwise lines are added or removed.
func diffLines(b, a *Proxy) []Change {
	type line struct {
		text string
		pos  Pos
	}
	group := func(p *Proxy) (map[string][]line, []string) {
		m := map[string][]line{}
		var order []string
		for _, d := range p.Directives {
			if len(d.Words) == 0 || handled[d.Words[0]] || d.Words[0] == "no" && len(d.Words) > 1 && d.Words[1] == "option" {
				continue
			}
			k := d.Words[0]
			if _, ok := m[k]; !ok {
				order = append(order, k)
			}
			m[k] = append(m[k], line{strings.Join(d.Words, " "), d.Pos})
		}
		return m, order
	}
	bm, border := group(b)
	am, aorder := group(a)
	var out []Change
	for _, k := range append(aorder, border...) {
		bl, al := bm[k], am[k]
		if bl == nil && al == nil {
			continue // the second pass over a keyword already seen
		}
		delete(bm, k)
		delete(am, k)
		if len(bl) == 1 && len(al) == 1 {
			if bl[0].text != al[0].text {
				out = append(out, Change{Kind: "directive", Op: OpChanged, Name: k, Before: bl[0].text, After: al[0].text, File: al[0].pos.File, Line: al[0].pos.Line})
			}
			continue
		}
		count := map[string]int{}
		for _, l := range bl {
			count[l.text]++
		}
		for _, l := range al {
			if count[l.text] > 0 {
				count[l.text]--
				continue
			}
			out = append(out, Change{Kind: "directive", Op: OpAdded, Name: k, After: l.text, File: l.pos.File, Line: l.pos.Line})
		}
		for _, l := range bl {
			if count[l.text] > 0 {
				count[l.text]--
				out = append(out, Change{Kind: "directive", Op: OpRemoved, Name: k, Before: l.text, File: l.pos.File, Line: l.pos.Line})
			}
		}
	}
	return out
}
