package probe

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haguard/haguard/validate"
)

// haproxy's defaults for the give-up time (doc/configuration.txt,
// `retries`): 3 retries, each after a turn-around of min(`timeout
// connect`, 1s) when the same server is tried again.
const (
	defaultRetries = 3
	maxTurnAround  = time.Second
	// DefaultGiveUp is the give-up time with haproxy's defaults: what a
	// target the config does not bind is assumed to have.
	DefaultGiveUp = defaultRetries * maxTurnAround
)

// maxErrorPage bounds what is read of one errorfile.
const maxErrorPage = 64 << 10

// Listeners adapts the config model to Listener: one per frontend or
// listen that HAProxy starts (a disabled one binds nothing), with the
// check options, server ports and names of every live backend it routes
// to (use_backend and default_backend alike), the longest time haproxy
// takes to give up on one of their servers, and the error pages the
// sections answer with.
func Listeners(vc *validate.Config) []Listener {
	backs := map[*validate.Proxy][]*validate.Proxy{}
	for _, r := range validate.Routes(vc) {
		backs[r.Front] = append(backs[r.Front], r.Back)
	}
	var out []Listener
	for _, fe := range vc.LiveFrontends() {
		l := Listener{Section: fe.Section(), Mode: fe.EffMode().Value}
		for _, b := range fe.Binds {
			l.Binds = append(l.Binds, b.Address)
		}
		l.ErrorPages = errorPages(fe, nil)
		for _, be := range backs[fe] {
			l.Backends = append(l.Backends, be.Name)
			l.GiveUp = max(l.GiveUp, GiveUpOf(be))
			l.ErrorPages = errorPages(be, l.ErrorPages)
			if c := be.EffCheck(); c != nil && c.On {
				l.MySQLCheck = l.MySQLCheck || c.Name == "mysql-check"
				l.HTTPCheck = l.HTTPCheck || c.Name == "httpchk"
			}
			for _, s := range be.Servers {
				if n, err := strconv.Atoi(s.Port()); err == nil && !slices.Contains(l.ServerPorts, n) {
					l.ServerPorts = append(l.ServerPorts, n)
				}
			}
		}
		out = append(out, l)
	}
	return out
}

// GiveUpOf is how long haproxy takes, at most, to give up on a server of
// backend be that refuses connections: `retries` (default 3) turn-arounds
// of min(`timeout connect`, 1s) each, the delay haproxy waits before it
// tries the same server again. With `retries 0` it gives up at once;
// either way the client then sees its connection closed (mode tcp) or a
// 503 (mode http). A server that drops SYNs instead costs up to
// (retries+1) × `timeout connect`, which no default linger waits for.
func GiveUpOf(be *validate.Proxy) time.Duration {
	retries := defaultRetries
	if d, ok := lastDirective(be, "retries"); ok && len(d.Words) > 1 {
		if n, err := strconv.Atoi(d.Words[1]); err == nil && n >= 0 {
			retries = n
		}
	}
	turn := maxTurnAround
	if c := be.EffTimeout("connect"); c.Set() && c.Time.D < turn {
		turn = c.Time.D
	}
	return time.Duration(retries) * turn
}

// lastDirective is the last line starting with keyword in p, else in the
// defaults it inherits from (the nearest first), as haproxy resolves it.
func lastDirective(p *validate.Proxy, keyword string) (validate.Directive, bool) {
	for q := p; q != nil; q = q.Defaults {
		for i := len(q.Directives) - 1; i >= 0; i-- {
			if d := q.Directives[i]; len(d.Words) > 0 && d.Words[0] == keyword {
				return d, true
			}
		}
	}
	return validate.Directive{}, false
}

// errorPages adds to pages the bodies that p (and the defaults it
// inherits from) answers haproxy's own errors with: `errorfile <code>
// <file>` (a whole HTTP response; its body is kept) and `http-error status
// <code> ... string <text> | file <file> | errorfile <file>`. A file that
// cannot be read is skipped: the built-in pages are still recognised.
// Pages kept in `http-errors` sections (`errorfiles`) and log-format
// bodies are not read.
func errorPages(p *validate.Proxy, pages map[int][]string) map[int][]string {
	add := func(code int, body string) {
		body = strings.TrimSpace(body)
		if body == "" || slices.Contains(pages[code], body) {
			return
		}
		if pages == nil {
			pages = map[int][]string{}
		}
		pages[code] = append(pages[code], body)
	}
	for q := p; q != nil; q = q.Defaults {
		for _, d := range q.Directives {
			w := d.Words
			switch {
			case len(w) >= 3 && w[0] == "errorfile":
				if code, err := strconv.Atoi(w[1]); err == nil {
					if b, ok := readPage(d.File, unquote(w[2])); ok {
						add(code, responseBody(b))
					}
				}
			case len(w) >= 3 && w[0] == "http-error" && w[1] == "status":
				code, err := strconv.Atoi(w[2])
				if err != nil {
					continue
				}
				for i := 3; i+1 < len(w); i++ {
					switch w[i] {
					case "string":
						add(code, unquote(w[i+1]))
					case "file":
						if b, ok := readPage(d.File, unquote(w[i+1])); ok {
							add(code, string(b))
						}
					case "errorfile":
						if b, ok := readPage(d.File, unquote(w[i+1])); ok {
							add(code, responseBody(b))
						}
					}
				}
			}
		}
	}
	return pages
}

// readPage reads an error page named in the config file cfgFile: as
// written, or relative to that file's directory.
func readPage(cfgFile, name string) ([]byte, bool) {
	paths := []string{name}
	if !filepath.IsAbs(name) && cfgFile != "" {
		paths = append(paths, filepath.Join(filepath.Dir(cfgFile), name))
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, maxErrorPage))
		f.Close()
		return b, err == nil
	}
	return nil, false
}

// responseBody is what follows the header block of a raw HTTP response.
func responseBody(b []byte) string {
	for _, sep := range [][]byte{[]byte("\r\n\r\n"), []byte("\n\n")} {
		if i := bytes.Index(b, sep); i >= 0 {
			return string(b[i+len(sep):])
		}
	}
	return ""
}

// unquote drops the quotes around a word as haproxy does ('x' or "x";
// the words keep them).
func unquote(w string) string {
	if len(w) >= 2 && (w[0] == '"' || w[0] == '\'') && w[len(w)-1] == w[0] {
		if w[0] == '"' {
			if u, err := strconv.Unquote(w); err == nil {
				return u
			}
		}
		return w[1 : len(w)-1]
	}
	return w
}
