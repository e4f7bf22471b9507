package validate

import "strings"

// The keywords that name files, from the configuration manuals of
// haproxy 2.6 and 3.0 (doc/configuration.txt: every keyword whose
// argument is a <file>, <path>, <dir> or an address that may be a unix
// socket). docs/security.md lists them for users.

// line records the references of one line and updates the resolution state.
func (w *refWalker) line(sec *Proxy, d Directive) {
	ws := d.Words
	if len(ws) == 0 {
		return
	}
	kw := ws[0]
	arg := func(i int) string {
		if i < len(ws) {
			return ws[i]
		}
		return ""
	}
	if sec.Kind != "crt-store" {
		w.storeSec = nil
	}
	switch sec.Kind {
	case KindGlobal:
		w.global(sec, d, arg)
	case KindDefaults, KindFrontend, KindBackend, KindListen:
		w.proxy(sec, d, arg)
	case "program":
		if kw == "command" && len(ws) > 1 {
			w.add(sec, d, "program", AccessExec, ws[1], "")
		}
		return // a command line is not haproxy syntax: no converters in it
	case "http-errors":
		if kw == "errorfile" {
			w.add(sec, d, "errorfile", AccessServe, arg(2), "")
		}
	case "ring":
		switch kw {
		case "backing-file":
			w.add(sec, d, "backing-file", AccessWrite, arg(1), "")
		case "server":
			w.addSocket(sec, d, "server-socket", AccessConnect, arg(2), false)
			w.sslParams(sec, d, 3)
		}
	case "peers":
		switch kw {
		case "peer", "server":
			w.addSocket(sec, d, "peer-socket", AccessConnect, arg(2), false)
			w.sslParams(sec, d, 3)
		case "bind":
			w.addSocket(sec, d, "socket", AccessWrite, arg(1), true)
			w.sslParams(sec, d, 2)
		case "default-server", "default-bind":
			w.sslParams(sec, d, 1)
		}
	case "log-forward":
		switch kw {
		case "bind", "dgram-bind":
			w.addSocket(sec, d, "socket", AccessWrite, arg(1), true)
			w.sslParams(sec, d, 2)
		case "log":
			w.logTarget(sec, d, arg(1))
		}
	case "crt-store":
		w.crtStore(sec, d, arg)
	}
	w.converters(sec, d)
	w.genericFiles(sec, d)
}

func (w *refWalker) global(sec *Proxy, d Directive, arg func(int) string) {
	switch kw := d.Words[0]; kw {
	case "default-path":
		w.mode, w.origin = arg(1), ""
		if w.mode == "origin" {
			w.origin = arg(2)
		}
	case "crt-base":
		w.crtBase = arg(1)
	case "ca-base":
		w.caBase = arg(1)
	case "key-base":
		w.keyBase = arg(1)
	case "server-state-base":
		w.srvState = arg(1)
	case "unix-bind":
		for i := 1; i+1 < len(d.Words); i++ {
			if d.Words[i] == "prefix" {
				w.unixPrefix = d.Words[i+1]
			}
		}
	case "chroot":
		w.add(sec, d, "chroot", AccessWrite, arg(1), "")
	case "pidfile":
		w.add(sec, d, "pidfile", AccessWrite, arg(1), "")
	case "lua-load", "lua-load-per-thread":
		w.add(sec, d, "lua", AccessRead, arg(1), "")
	case "lua-prepend-path":
		// A search pattern ("/usr/share/lua/?.lua"): its directory part.
		p := arg(1)
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		w.add(sec, d, "lua-path", AccessRead, p, "")
	case "ssl-dh-param-file":
		w.add(sec, d, "dh-param", AccessRead, arg(1), "")
	case "issuers-chain-path":
		w.add(sec, d, "issuers-chain-path", AccessRead, arg(1), "")
	case "ssl-provider-path":
		w.add(sec, d, "ssl-provider-path", AccessRead, arg(1), "")
	case "httpclient.ssl.ca-file":
		w.add(sec, d, "ca-file", AccessRead, arg(1), w.caBase)
	case "server-state-file":
		w.add(sec, d, "server-state", AccessRead, arg(1), w.srvState)
	case "stats-file":
		w.add(sec, d, "stats-file", AccessRead, arg(1), "")
	case "h1-case-adjust-file":
		w.add(sec, d, "h1-case-adjust", AccessRead, arg(1), "")
	case "51degrees-data-file", "deviceatlas-json-file", "wurfl-data-file":
		w.add(sec, d, "device-data", AccessRead, arg(1), "")
	case "wurfl-patch-file":
		for _, p := range d.Words[1:] {
			for _, f := range strings.Split(p, ",") {
				w.add(sec, d, "device-data", AccessRead, f, "")
			}
		}
	case "stats":
		if arg(1) == "socket" {
			w.addSocket(sec, d, "socket", AccessWrite, arg(2), true)
			w.sslParams(sec, d, 3)
		}
	case "log":
		w.logTarget(sec, d, arg(1))
	}
}

func (w *refWalker) proxy(sec *Proxy, d Directive, arg func(int) string) {
	ws := d.Words
	switch kw := ws[0]; kw {
	case "bind":
		w.addSocket(sec, d, "socket", AccessWrite, arg(1), true)
		w.sslParams(sec, d, 2)
	case "server":
		w.addSocket(sec, d, "server-socket", AccessConnect, arg(2), false)
		w.sslParams(sec, d, 3)
	case "server-template":
		w.addSocket(sec, d, "server-socket", AccessConnect, arg(3), false)
		w.sslParams(sec, d, 4)
	case "default-server":
		w.sslParams(sec, d, 1)
	case "errorfile":
		w.add(sec, d, "errorfile", AccessServe, arg(2), "")
	case "log":
		w.logTarget(sec, d, arg(1))
	case "server-state-file-name":
		if n := arg(1); n != "" && n != "use-backend-name" {
			w.add(sec, d, "server-state", AccessRead, n, w.srvState)
		}
	case "external-check":
		if arg(1) == "command" || arg(1) == "path" {
			w.add(sec, d, "external-check", AccessExec, arg(2), "")
		}
	case "filter":
		// filter spoe [engine <name>] config <file>
		// filter opentracing [id <id>] config <file>
		for i := 2; i+1 < len(ws); i++ {
			if ws[i] == "config" {
				kind := "spoe-config"
				if ws[1] != "spoe" {
					kind = "tracer-config"
				}
				w.add(sec, d, kind, AccessRead, ws[i+1], "")
			}
		}
	case "http-request", "http-response", "http-after-response", "http-error":
		w.payload(sec, d)
	}
	// ACL files: `acl name crit -f FILE`, and anonymous ACLs in any
	// condition (`if { src -f FILE }`).
	for i := 1; i+1 < len(ws); i++ {
		if ws[i] == "-f" {
			w.add(sec, d, "acl-file", AccessRead, ws[i+1], "")
		}
	}
}

// payload records the file a rule sends to clients: `http-request return
// ... file F`, the same options of deny and tarpit, and `http-error`.
func (w *refWalker) payload(sec *Proxy, d Directive) {
	ws := d.Words
	from := 1
	if ws[0] != "http-error" {
		if len(ws) < 2 || (ws[1] != "return" && ws[1] != "deny" && ws[1] != "tarpit") {
			return
		}
		from = 2
	}
	for i := from; i+1 < len(ws); i++ {
		switch ws[i] {
		case "if", "unless":
			return
		case "file", "lf-file", "errorfile":
			w.add(sec, d, "return-file", AccessServe, ws[i+1], "")
			i++
		}
	}
}

// logTarget records a log target that is a unix socket ("/dev/log").
func (w *refWalker) logTarget(sec *Proxy, d Directive, target string) {
	w.addSocket(sec, d, "log-socket", AccessConnect, target, false)
}

// sslParams scans the parameters of a bind, server or stats socket line
// (from word i on) for the ones that name files.
func (w *refWalker) sslParams(sec *Proxy, d Directive, from int) {
	ws := d.Words
	for i := from; i+1 < len(ws); i++ {
		v := ws[i+1]
		switch ws[i] {
		case "crt":
			w.addCrt(sec, d, v, w.crtBase)
		case "crt-list":
			start := len(w.out)
			w.add(sec, d, "crt-list", AccessRead, v, "")
			if len(w.out) > start {
				w.out[start].list = &listBases{crt: w.crtBase, ca: w.caBase, dirs: w.bases(d.File)}
			}
		case "ca-file", "ca-verify-file", "crl-file":
			w.add(sec, d, ws[i], AccessRead, v, w.caBase)
		case "ca-sign-file", "tls-ticket-keys":
			w.add(sec, d, ws[i], AccessRead, v, "")
		default:
			continue
		}
		i++
	}
}

// crtStore reads a crt-store section (3.0): its own crt-base and
// key-base, and `load crt F [key F] [ocsp F] [issuer F] [sctl F]`.
func (w *refWalker) crtStore(sec *Proxy, d Directive, arg func(int) string) {
	if w.storeSec != sec {
		w.storeSec, w.storeCrtBase, w.storeKeyBase = sec, w.crtBase, w.keyBase
	}
	ws := d.Words
	switch ws[0] {
	case "crt-base":
		w.storeCrtBase = arg(1)
	case "key-base":
		w.storeKeyBase = arg(1)
	case "load":
		for i := 1; i+1 < len(ws); i++ {
			v := ws[i+1]
			switch ws[i] {
			case "crt":
				w.addCrt(sec, d, v, w.storeCrtBase)
			case "key":
				w.add(sec, d, "key", AccessRead, v, w.storeKeyBase)
			case "ocsp", "issuer", "sctl":
				w.add(sec, d, ws[i], AccessRead, v, "")
			default:
				continue
			}
			i++
		}
	}
}

// fileFuncs are the converters and actions whose argument is a file:
// map*(FILE), add-acl(FILE), del-acl(FILE), set-map(FILE), del-map(FILE),
// and jwt_verify(ALG,FILE) with a certificate (any alg but HS*).
func fileFuncArg(name string, args []string) (kind string, file string) {
	switch {
	case name == "map" || strings.HasPrefix(name, "map_"):
		if len(args) > 0 {
			return "map", jwtArg(args[0])
		}
	case name == "add-acl" || name == "del-acl":
		if len(args) > 0 {
			return "acl-file", jwtArg(args[0])
		}
	case name == "set-map" || name == "del-map" || name == "add-map":
		if len(args) > 0 {
			return "map", jwtArg(args[0])
		}
	case name == "jwt_verify":
		if len(args) > 1 && !strings.HasPrefix(strings.ToUpper(jwtArg(args[0])), "HS") && !strings.Contains(args[1], "(") {
			return "crt", jwtArg(args[1])
		}
	}
	return "", ""
}

// jwtArg reads a converter's argument: haproxy's sample argument parser
// takes it in single or double quotes, or bare.
func jwtArg(a string) string {
	if len(a) >= 2 && (a[0] == '"' || a[0] == '\'') && a[len(a)-1] == a[0] {
		return a[1 : len(a)-1]
	}
	return a
}

// converters finds file arguments of converters and actions in any word
// of the line (log formats, sample expressions, action names).
func (w *refWalker) converters(sec *Proxy, d Directive) {
	for _, word := range d.Words {
		if !strings.Contains(word, "(") {
			continue
		}
		for _, c := range funcCalls(word) {
			if kind, f := fileFuncArg(c.name, c.args); kind != "" {
				w.add(sec, d, kind, AccessRead, f, "")
			}
		}
	}
}

type funcCall struct {
	name string
	args []string
}

// funcCalls finds name(arg,arg) calls in a word: a name is a run of
// [a-z0-9_.-] right before '('; arguments end at ',' or the matching
// ')', honouring quotes and nested parentheses.
func funcCalls(s string) []funcCall {
	var out []funcCall
	for i := 0; i < len(s); i++ {
		if s[i] != '(' {
			continue
		}
		j := i
		for j > 0 && isFuncChar(s[j-1]) {
			j--
		}
		if j == i {
			continue
		}
		c := funcCall{name: s[j:i]}
		depth, start, quote := 0, i+1, byte(0)
	scan:
		for k := i + 1; k < len(s); k++ {
			ch := s[k]
			switch {
			case quote != 0:
				if ch == '\\' {
					k++
				} else if ch == quote {
					quote = 0
				}
			case ch == '"' || ch == '\'':
				quote = ch
			case ch == '(':
				depth++
			case ch == ')' && depth > 0:
				depth--
			case ch == ',' && depth == 0:
				c.args = append(c.args, strings.TrimSpace(s[start:k]))
				start = k + 1
			case ch == ')':
				c.args = append(c.args, strings.TrimSpace(s[start:k]))
				break scan
			}
		}
		out = append(out, c)
	}
	return out
}

func isFuncChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// genericFiles catches a keyword of a newer haproxy that ends in "-file"
// and is not known above ("ssl-foo-file PATH"), as a file it reads. The
// policy would rather ask about one line too many than miss a file.
func (w *refWalker) genericFiles(sec *Proxy, d Directive) {
	ws := d.Words
	for i := 0; i+1 < len(ws); i++ {
		k := ws[i]
		if !strings.HasSuffix(k, "-file") || knownFileKeywords[k] || strings.HasPrefix(k, "-") {
			continue
		}
		w.add(sec, d, "file", AccessRead, ws[i+1], "")
		i++
	}
}

// knownFileKeywords end in "-file" and are handled above, or name no file.
var knownFileKeywords = map[string]bool{
	"ssl-dh-param-file": true, "h1-case-adjust-file": true, "server-state-file": true, "stats-file": true,
	"51degrees-data-file": true, "deviceatlas-json-file": true, "wurfl-data-file": true, "wurfl-patch-file": true,
	"ca-file": true, "ca-verify-file": true, "ca-sign-file": true, "crl-file": true, "lf-file": true,
	"backing-file": true, "httpclient.ssl.ca-file": true, "load-server-state-from-file": true,
}
