// Package validate checks an HAProxy configuration before a reload: it
// parses the files into a small model of its own (Config), runs a registry
// of rules over it (timeout alignment, health checks, keepalive) and runs
// `haproxy -c` at the same time.
package validate

import (
	"fmt"
	"sort"
	"time"
)

// Kind is a section kind.
type Kind string

// The section kinds the model keeps.
const (
	KindGlobal   Kind = "global"
	KindDefaults Kind = "defaults"
	KindFrontend Kind = "frontend"
	KindBackend  Kind = "backend"
	KindListen   Kind = "listen"
)

// quoted is how messages name a proxy: "listen 'db'".
func (k Kind) quoted(name string) string { return string(k) + " '" + name + "'" }

// Pos is where a line sits.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Directive is one configuration line, split the way HAProxy splits it.
type Directive struct {
	Pos
	Words   []string // Words[0] is the keyword ("timeout", "server", "option", "no"...)
	Comment string   // text after '#', if any
}

// Setting is a resolved value and the line it comes from. Pos.Line == 0
// means unset.
type Setting struct {
	Value string
	Pos   Pos
}

// IsSet reports whether the setting was written somewhere.
func (s Setting) IsSet() bool { return s.Pos.Line > 0 }

// TimeSetting is a time directive: the value, its parse and its origin.
// Err is set when the value did not parse (haproxy -c reports it too).
type TimeSetting struct {
	Keyword string // "timeout server", "hard-stop-after", "srvtcpka-idle"
	Time    Time
	Err     error
	Pos     Pos
}

// Set reports whether the timer is set to a usable non-zero value (HAProxy
// treats 0 as unset).
func (t TimeSetting) Set() bool { return t.Pos.Line > 0 && t.Err == nil && t.Time.D > 0 }

// Option is an `option X` line (or `no option X`).
type Option struct {
	Name string
	On   bool // false for "no option X"
	Args []string
	Pos  Pos
}

// Param is one server/bind parameter ("check", "port 9200").
type Param struct {
	Name  string
	Value string // empty for a flag
	Pos   Pos
}

// Params are the parameters of one server, default-server or bind line,
// in order. A slice, not a map: a line has a handful, and the benchmark
// config has 50,000 server lines.
type Params []Param

// Get returns the last parameter named name (a later one overrides).
func (ps Params) Get(name string) (Param, bool) {
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].Name == name {
			return ps[i], true
		}
	}
	return Param{}, false
}

// Server is a `server` line with its own parameters, before default-server.
type Server struct {
	Name    string
	Address string // as written: "db-node-1:3306", "127.0.0.1:3306"
	// Params are the line's own parameters. Their Pos is left zero (the
	// list is shared by lines with identical parameters): the position is
	// Server.Pos, which Proxy.ServerParam fills in. Read-only.
	Params  Params
	Pos     Pos
	Comment string
}

// Host and Port split Address; Port is "" when none is given.
func (s Server) Host() string { h, _ := splitHostPort(s.Address); return h }

// Port is the server's port as written ("3306"), or "".
func (s Server) Port() string { _, p := splitHostPort(s.Address); return p }

// Bind is one `bind` line; an address list ("a:1,b:2") yields one Bind per address.
type Bind struct {
	Address string // as written: "127.0.0.1:3307", "*:80", ":80", "unix@/run/x.sock"
	// Dial is a host:port to connect to from this host ("127.0.0.1:3307",
	// "127.0.0.1:80" for "*:80", "[::1]:80" for ":::80"); empty for a
	// unix socket, abns or fd address.
	Dial   string
	Params Params
	Pos    Pos
}

// Ref is a reference to a backend from use_backend/default_backend.
type Ref struct {
	Backend string
	Cond    string // "if ..." / "unless ..." for use_backend
	Pos     Pos
}

// Proxy is a defaults, frontend, backend or listen section. Its own
// settings are the lines it writes; the Eff* methods resolve them through
// the defaults chain as HAProxy does.
type Proxy struct {
	Kind Kind
	Name string
	// From is the defaults section named with "from", or "" for the
	// implicit last one.
	From string
	Pos  Pos
	// Defaults is the defaults section this proxy inherits from (nil: none).
	Defaults *Proxy
	// Directives are every line of the section, in order.
	Directives []Directive
	// Tags are haguard annotations in comments: "# haguard:db", "# haguard:galera".
	Tags map[string]Pos

	Mode     Setting
	Timeouts map[string]TimeSetting // "client", "server", "tunnel"...
	// KA holds clitcpka-idle/intvl and srvtcpka-idle/intvl (unitless = s)
	// and clitcpka-cnt/srvtcpka-cnt (kept raw).
	KA map[string]TimeSetting
	// Options by name; the check-type ones (mysql-check, httpchk, tcp-check,
	// pgsql-check, ...) are also kept in Check.
	Options map[string]Option
	// Check is the last health-check type option written here.
	Check *Option
	// DefaultServer accumulates the section's default-server lines.
	DefaultServer  Params
	Servers        []Server
	Binds          []Bind
	DefaultBackend *Ref
	UseBackends    []Ref
}

// Section is "frontend web", "backend db", "defaults" as findings print it.
func (p *Proxy) Section() string {
	if p.Name == "" {
		return string(p.Kind)
	}
	return string(p.Kind) + " " + p.Name
}

// HasFrontend reports whether the proxy accepts connections (frontend, listen).
func (p *Proxy) HasFrontend() bool { return p.Kind == KindFrontend || p.Kind == KindListen }

// HasBackend reports whether the proxy connects to servers (backend, listen).
func (p *Proxy) HasBackend() bool { return p.Kind == KindBackend || p.Kind == KindListen }

// EffMode is the proxy's mode after inheritance ("tcp" when never set).
func (p *Proxy) EffMode() Setting {
	for q := p; q != nil; q = q.Defaults {
		if q.Mode.IsSet() {
			return q.Mode
		}
	}
	return Setting{Value: "tcp"}
}

// EffTimeout resolves `timeout name` through the defaults chain. A zero
// value counts as unset but still shadows the defaults, as in HAProxy.
func (p *Proxy) EffTimeout(name string) TimeSetting {
	for q := p; q != nil; q = q.Defaults {
		if t, ok := q.Timeouts[name]; ok {
			return t
		}
	}
	return TimeSetting{Keyword: "timeout " + name}
}

// EffKA resolves a *tcpka-idle/intvl/cnt setting through the defaults chain.
func (p *Proxy) EffKA(name string) TimeSetting {
	for q := p; q != nil; q = q.Defaults {
		if t, ok := q.KA[name]; ok {
			return t
		}
	}
	return TimeSetting{Keyword: name}
}

// EffOption resolves `option name` / `no option name`; ok is false when
// neither the proxy nor its defaults mention it.
func (p *Proxy) EffOption(name string) (Option, bool) {
	for q := p; q != nil; q = q.Defaults {
		if o, ok := q.Options[name]; ok {
			return o, true
		}
	}
	return Option{}, false
}

// Disabled reports whether the proxy is disabled: the last `disabled` or
// `enabled` line of the section, else of its defaults chain (HAProxy
// copies the flag from the defaults). HAProxy skips a disabled proxy in
// its configuration checks and never starts it.
func (p *Proxy) Disabled() bool {
	for q := p; q != nil; q = q.Defaults {
		for i := len(q.Directives) - 1; i >= 0; i-- {
			if w := q.Directives[i].Words; len(w) == 1 && (w[0] == "disabled" || w[0] == "enabled") {
				return w[0] == "disabled"
			}
		}
	}
	return false
}

// OptionOn reports whether `option name` is in effect.
func (p *Proxy) OptionOn(name string) bool { o, ok := p.EffOption(name); return ok && o.On }

// EffCheck is the health-check type in effect (nil: plain TCP connect check).
func (p *Proxy) EffCheck() *Option {
	for q := p; q != nil; q = q.Defaults {
		if q.Check != nil {
			if !q.Check.On {
				return nil
			}
			return q.Check
		}
	}
	return nil
}

// ServerParam resolves a parameter of s: the server line, then the
// proxy's default-server lines, then the defaults chain's.
func (p *Proxy) ServerParam(s Server, name string) (Param, bool) {
	if v, ok := s.Params.Get(name); ok {
		v.Pos = s.Pos
		return v, true
	}
	for q := p; q != nil; q = q.Defaults {
		if v, ok := q.DefaultServer.Get(name); ok {
			return v, true
		}
	}
	return Param{}, false
}

// ServerTime resolves a time parameter of s (inter, fastinter, tcp-ut...);
// unitless = ms. ok is false when unset or unparsable.
func (p *Proxy) ServerTime(s Server, name string) (time.Duration, Param, bool) {
	v, ok := p.ServerParam(s, name)
	if !ok {
		return 0, v, false
	}
	t, err := ParseTime(v.Value, Millis)
	if err != nil || t.D == 0 {
		return 0, v, false
	}
	return t.D, v, true
}

// Tagged reports whether a comment in the section itself carries
// "# haguard:<tag>" (a tag in a defaults section is not inherited).
func (p *Proxy) Tagged(tag string) bool {
	_, ok := p.Tags[tag]
	return ok
}

// Config is a parsed set of -f files, merged in order as haproxy does.
type Config struct {
	Files     []string
	Global    *Proxy // the merged global section (Kind global); never nil
	Defaults  []*Proxy
	Frontends []*Proxy
	Backends  []*Proxy
	Listens   []*Proxy
	// Others are the sections the model does not interpret (program,
	// http-errors, ring, peers, crt-store, userlist, resolvers...), with
	// Kind the section keyword and only Pos, Name and Directives set.
	Others []*Proxy
	// Lines is the number of lines read in all files.
	Lines int
	// Masked is the number of lines in dropped .if branches: haproxy
	// skips them, and so do the rules.
	Masked int
	// Notes are what the reader noticed: lines haproxy refuses, variables
	// read while unset, .warning/.notice messages (rules_reader.go).
	Notes []Note
	// Ignores are the `# haguard:ignore` comments of live lines.
	Ignores []IgnoreComment
	// Target is the binary the files were read for (nil: unknown).
	Target *Target

	byName map[string]*Proxy // backends and listens; the first of a name wins
	// spans are the section headers of each file, in the order read.
	spans map[string][]span
}

// span is a section header: the section runs from its line to the next
// header of the same file. p is nil for sections the model does not keep
// (resolvers, userlist...), which carry their label instead.
type span struct {
	line  int
	p     *Proxy
	label string
}

func (c *Config) addSpan(pos Pos, p *Proxy, label string) {
	if c.spans == nil {
		c.spans = map[string][]span{}
	}
	ss := c.spans[pos.File]
	if n := len(ss); n > 0 && ss[n-1].line >= pos.Line {
		// The file is read again (named twice with -f): its headers, and
		// so the names of its sections, are those of the first reading.
		return
	}
	c.spans[pos.File] = append(ss, span{line: pos.Line, p: p, label: label})
}

// SectionAt names the section that contains pos, as findings print it
// ("backend db", "defaults", "global"); "" for a line outside any section
// (before the first header of its file) or an unknown position. Every
// file starts outside any section, as in HAProxy.
func (c *Config) SectionAt(pos Pos) string {
	spans := c.spans[pos.File]
	// The first header after the line; the one before it contains the line.
	i := sort.Search(len(spans), func(i int) bool { return spans[i].line > pos.Line }) - 1
	if i < 0 || pos.Line <= 0 {
		return ""
	}
	if spans[i].p == nil {
		return spans[i].label
	}
	return spans[i].p.Section()
}

// Backend finds a backend or listen by name.
func (c *Config) Backend(name string) *Proxy {
	if c.byName != nil {
		return c.byName[name]
	}
	for _, b := range c.Backends {
		if b.Name == name {
			return b
		}
	}
	for _, l := range c.Listens {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// Proxies returns frontends, backends and listens in file order of kinds.
func (c *Config) Proxies() []*Proxy {
	out := make([]*Proxy, 0, len(c.Frontends)+len(c.Backends)+len(c.Listens))
	out = append(out, c.Frontends...)
	out = append(out, c.Backends...)
	return append(out, c.Listens...)
}

// Live keeps the proxies HAProxy starts: all but the disabled ones. A
// disabled proxy binds nothing and carries no traffic, so routes, the
// rules about them, probe targets and live facts leave it out; the rules
// about a line's own text (units, overflow) still read it, as HAProxy
// still parses it.
func Live(ps []*Proxy) []*Proxy {
	out := make([]*Proxy, 0, len(ps))
	for _, p := range ps {
		if !p.Disabled() {
			out = append(out, p)
		}
	}
	return out
}

// LiveFrontends are the frontends and listens HAProxy starts (Live): the
// proxies that bind.
func (c *Config) LiveFrontends() []*Proxy {
	return Live(append(append([]*Proxy(nil), c.Frontends...), c.Listens...))
}

// LiveBackends are the backends and listens HAProxy starts (Live): the
// proxies whose servers carry traffic.
func (c *Config) LiveBackends() []*Proxy {
	return Live(append(append([]*Proxy(nil), c.Backends...), c.Listens...))
}

// AllSections returns global, defaults and proxies: every section whose lines the model keeps.
func (c *Config) AllSections() []*Proxy {
	out := []*Proxy{c.Global}
	out = append(out, c.Defaults...)
	return append(out, c.Proxies()...)
}
