package validate

import (
	"net"
	"strconv"
	"strings"

	"github.com/haproxytech/client-native/v5/config-parser/common"
	"github.com/haproxytech/client-native/v5/config-parser/params"
	"github.com/haproxytech/client-native/v5/config-parser/parsers"
	"github.com/haproxytech/client-native/v5/config-parser/types"
)

// lineParser is the part of a client-native directive parser we use.
type lineParser interface {
	Init()
	Parse(line string, parts []string, comment string) (string, error)
	Get(createIfNotExist bool) (common.ParserData, error)
}

// cnParse runs one client-native directive parser over one line.
func cnParse(p lineParser, d Directive) common.ParserData {
	p.Init()
	// The line argument only feeds client-native's error messages, which we drop.
	if _, err := p.Parse("", d.Words, d.Comment); err != nil {
		return nil
	}
	data, err := p.Get(false)
	if err != nil {
		return nil
	}
	return data
}

// checkOptions are the mutually exclusive health-check types.
var checkOptions = map[string]bool{
	"mysql-check": true, "httpchk": true, "tcp-check": true, "pgsql-check": true,
	"redis-check": true, "ssl-hello-chk": true, "smtpchk": true, "ldap-check": true,
	"external-check": true, "spop-check": true,
}

// kaKnobs are the per-proxy keepalive knobs; the time ones are unitless = seconds.
var kaKnobs = map[string]bool{
	"clitcpka-idle": true, "clitcpka-intvl": true, "srvtcpka-idle": true, "srvtcpka-intvl": true,
	"clitcpka-cnt": false, "srvtcpka-cnt": false,
}

func (b *builder) directive(d Directive) {
	p := b.cur
	w := d.Words
	switch w[0] {
	case "timeout":
		if len(w) >= 3 {
			put(&p.Timeouts, w[1], timeSetting("timeout "+w[1], w[2], Millis, d.Pos))
		}
	case "hard-stop-after":
		if p.Kind == KindGlobal && len(w) >= 2 {
			put(&p.Timeouts, "hard-stop-after", timeSetting("hard-stop-after", w[1], Millis, d.Pos))
		}
	case "clitcpka-idle", "clitcpka-intvl", "srvtcpka-idle", "srvtcpka-intvl", "clitcpka-cnt", "srvtcpka-cnt":
		if len(w) >= 2 {
			if kaKnobs[w[0]] {
				put(&p.KA, w[0], timeSetting(w[0], w[1], Seconds, d.Pos))
			} else {
				put(&p.KA, w[0], TimeSetting{Keyword: w[0], Time: Time{Raw: w[1]}, Pos: d.Pos})
			}
		}
	case "mode":
		if s, ok := cnParse(&parsers.Mode{}, d).(*types.StringC); ok {
			p.Mode = Setting{Value: s.Value, Pos: d.Pos}
		}
	case "option", "no":
		b.option(d)
	case "server":
		if s, ok := b.parseServer(d); ok {
			b.srvBuf = append(b.srvBuf, s)
		}
	case "server-template":
		// server-template PREFIX NUM FQDN:PORT params: one entry stands for all.
		if len(w) >= 4 {
			s, _ := b.parseServer(Directive{Pos: d.Pos, Words: append([]string{"server", w[1]}, w[3:]...), Comment: d.Comment})
			b.srvBuf = append(b.srvBuf, s)
		}
	case "default-server":
		if ds, ok := cnParse(&parsers.DefaultServer{}, sanitizeServerWords(d)).([]types.DefaultServer); ok && len(ds) > 0 {
			p.DefaultServer = append(p.DefaultServer, serverParams(ds[0].Params, d.Pos)...)
		}
	case "bind":
		if bs, ok := cnParse(&parsers.Bind{}, d).([]types.Bind); ok && len(bs) > 0 {
			prms := bindParams(bs[0].Params, d.Pos)
			for _, addr := range strings.Split(bs[0].Path, ",") {
				if addr == "" {
					continue
				}
				p.Binds = append(p.Binds, Bind{Address: addr, Dial: DialAddress(addr), Params: prms, Pos: d.Pos})
			}
		}
	case "use_backend":
		if ub, ok := cnParse(&parsers.UseBackend{}, d).([]types.UseBackend); ok && len(ub) > 0 {
			cond := strings.TrimSpace(ub[0].Cond + " " + ub[0].CondTest)
			p.UseBackends = append(p.UseBackends, Ref{Backend: ub[0].Name, Cond: cond, Pos: d.Pos})
		}
	case "default_backend":
		if s, ok := cnParse(&parsers.DefaultBackend{}, d).(*types.StringC); ok {
			p.DefaultBackend = &Ref{Backend: s.Value, Pos: d.Pos}
		}
	}
}

// put sets m[k] = v, making the map on first use: most proxies set few
// of the settings the model keeps.
func put[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = make(map[K]V, 4)
	}
	(*m)[k] = v
}

func timeSetting(kw, raw string, base Base, pos Pos) TimeSetting {
	t, err := ParseTime(raw, base)
	return TimeSetting{Keyword: kw, Time: t, Err: err, Pos: pos}
}

func (b *builder) option(d Directive) {
	w := d.Words
	on := true
	if w[0] == "no" {
		if len(w) < 3 || w[1] != "option" {
			return
		}
		on, w = false, w[1:]
	}
	if len(w) < 2 {
		return
	}
	o := Option{Name: w[1], On: on, Args: append([]string(nil), w[2:]...), Pos: d.Pos}
	// client-native knows the argument grammar of the two checks the rules read.
	if on {
		switch o.Name {
		case "mysql-check":
			if m, ok := cnParse(&parsers.OptionMysqlCheck{}, d).(*types.OptionMysqlCheck); ok && m.User != "" {
				o.Args = []string{"user", m.User}
			}
		case "httpchk":
			if h, ok := cnParse(&parsers.OptionHttpchk{}, d).(*types.OptionHttpchk); ok {
				o.Args = nil
				for _, a := range []string{h.Method, h.URI, h.Version} {
					if a != "" {
						o.Args = append(o.Args, a)
					}
				}
			}
		}
	}
	put(&b.cur.Options, o.Name, o)
	if checkOptions[o.Name] {
		oc := o
		b.cur.Check = &oc
	}
}

// sanitizeServerWords works around traps of client-native's
// params.ParseServerOptions, which loops forever when an option it knows
// is not followed by what it expects: a value option that ends the line
// ("... check port"), a word with "(" whose prefix is an option
// ("inter(0"), or a bare "set-proxy-v2-tlv-fmt". We replace words with
// "(" and that keyword by "_" (unknown to it, so skipped; no rule reads
// them) and append an empty sentinel word that a dangling option swallows.
// FuzzParseReader found the "(" case.
func sanitizeServerWords(d Directive) Directive {
	out := make([]string, 0, len(d.Words)+1)
	for _, w := range d.Words {
		if strings.ContainsRune(w, '(') || w == "set-proxy-v2-tlv-fmt" {
			w = "_"
		}
		out = append(out, w)
	}
	d.Words = append(out, "")
	return d
}

// maxParamCache bounds the memo of server parameter lists.
const maxParamCache = 4096

// parseServer parses a server line with client-native. Large configs
// repeat the same parameters on thousands of lines ("check port 9200
// inter 2s"), so the parsed list is memoized by its words.
func (b *builder) parseServer(d Directive) (Server, bool) {
	if len(d.Words) < 3 {
		return Server{}, false
	}
	s := Server{Name: d.Words[1], Address: d.Words[2], Pos: d.Pos, Comment: d.Comment}
	key := strings.Join(d.Words[3:], "\x00")
	tmpl, ok := b.paramCache[key]
	if !ok {
		if ss, ok := cnParse(&parsers.Server{}, sanitizeServerWords(d)).([]types.Server); ok && len(ss) > 0 {
			tmpl = serverParams(ss[0].Params, Pos{})
		}
		if b.paramCache == nil {
			b.paramCache = map[string]Params{}
		}
		if len(b.paramCache) < maxParamCache {
			b.paramCache[key] = tmpl
		}
	}
	// Servers with the same parameter words share one read-only list (its
	// capacity is capped, so an append copies); Proxy.ServerParam fills in
	// the line.
	s.Params = tmpl[:len(tmpl):len(tmpl)]
	return s, true
}

func serverParams(opts []params.ServerOption, pos Pos) Params {
	out := make(Params, 0, len(opts))
	for _, o := range opts {
		switch v := o.(type) {
		case *params.ServerOptionWord:
			out = append(out, Param{Name: v.Name, Pos: pos})
		case *params.ServerOptionValue:
			if v.Value != "" { // "" is our sentinel: a dangling option
				out = append(out, Param{Name: v.Name, Value: v.Value, Pos: pos})
			}
		case *params.ServerOptionDoubleWord:
			out = append(out, Param{Name: v.Name, Value: v.Value, Pos: pos})
		}
	}
	return out
}

func bindParams(opts []params.BindOption, pos Pos) Params {
	out := make(Params, 0, len(opts))
	for _, o := range opts {
		switch v := o.(type) {
		case *params.BindOptionWord:
			out = append(out, Param{Name: v.Name, Pos: pos})
		case *params.BindOptionValue:
			out = append(out, Param{Name: v.Name, Value: v.Value, Pos: pos})
		case *params.BindOptionDoubleWord:
			out = append(out, Param{Name: v.Name, Value: v.Value, Pos: pos})
		}
	}
	return out
}

// DialAddress turns a bind address as written into a host:port this host
// can connect to: a wildcard host becomes loopback ("*:80" and ":80" →
// "127.0.0.1:80", ":::80" → "[::1]:80"), a port range keeps its first port.
// It returns "" for unix sockets, abstract namespaces, fd@ and addresses
// that use environment variables.
func DialAddress(addr string) string {
	if i := strings.Index(addr, "@"); i >= 0 {
		switch addr[:i] {
		case "ipv4", "ipv6", "tcp", "tcp4", "tcp6":
			addr = addr[i+1:]
		default:
			return ""
		}
	}
	if addr == "" || strings.HasPrefix(addr, "/") || strings.Contains(addr, "$") {
		return ""
	}
	host, port := splitHostPort(addr)
	if port == "" {
		return ""
	}
	if i := strings.IndexByte(port, '-'); i > 0 {
		port = port[:i]
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return ""
	}
	switch host {
	case "", "*", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// splitHostPort splits HAProxy's "host:port" (the last colon separates;
// IPv6 may be bare, "::1:80", or bracketed).
func splitHostPort(addr string) (host, port string) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr, ""
	}
	return addr[:i], addr[i+1:]
}
