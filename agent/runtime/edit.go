package runtime

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// sectionKeywords start a section of an haproxy config.
var sectionKeywords = map[string]bool{
	"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true, "peers": true,
	"resolvers": true, "userlist": true, "mailers": true, "program": true, "http-errors": true, "ring": true,
	"cache": true, "crt-store": true, "traces": true, "log-forward": true, "fcgi-app": true,
}

// ServerLine is where a server is declared: the file, the 1-based line
// and its fields (comment left out).
type ServerLine struct {
	File   string
	Line   int
	Fields []string
}

// FindServer finds backend/server's line in the config files, in load
// order (a server of server-template or one added at runtime has none).
func FindServer(configs []string, read func(string) ([]byte, bool), backend, server string) (ServerLine, error) {
	for _, f := range configs {
		b, ok := read(f)
		if !ok {
			continue
		}
		in := false
		for i, l := range strings.Split(string(b), "\n") {
			fields, _ := splitLine(l)
			if len(fields) == 0 {
				continue
			}
			if sectionKeywords[fields[0]] {
				in = (fields[0] == "backend" || fields[0] == "listen") && len(fields) > 1 && fields[1] == backend
				continue
			}
			if in && fields[0] == "server" && len(fields) > 2 && fields[1] == server {
				return ServerLine{File: f, Line: i + 1, Fields: fields}, nil
			}
		}
	}
	return ServerLine{}, fmt.Errorf("server %s/%s: no server line in the config set (a server-template or a server added at runtime cannot be written): %w", backend, server, ErrNotFound)
}

// splitLine is a config line's fields and its trailing comment.
func splitLine(l string) (fields []string, comment string) {
	body := l
	if i := strings.Index(l, "#"); i >= 0 && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t') {
		body, comment = l[:i], l[i:]
	}
	return strings.Fields(body), comment
}

// ConfigServer is what a server line says about what runtime changes.
type ConfigServer struct {
	Addr string
	Port int
	// Weight is the line's "weight N"; WeightSet is false when it has
	// none (the weight then comes from default-server, else 1).
	Weight    int
	WeightSet bool
	Disabled  bool
}

// WeightOr is the line's weight, else def (the weight haproxy loaded,
// srv_iweight, which default-server decides).
func (c ConfigServer) WeightOr(def int) int {
	if c.WeightSet {
		return c.Weight
	}
	return def
}

// ParseServerLine reads what fields (a server line's) say.
func ParseServerLine(fields []string) ConfigServer {
	s := ConfigServer{}
	if len(fields) > 2 {
		s.Addr, s.Port = splitAddr(fields[2])
	}
	for i := 3; i < len(fields); i++ {
		switch fields[i] {
		case "disabled":
			s.Disabled = true
		case "enabled":
			s.Disabled = false
		case "weight":
			if i+1 < len(fields) {
				if w, err := strconv.Atoi(fields[i+1]); err == nil {
					s.Weight, s.WeightSet = w, true
				}
			}
		}
	}
	return s
}

// splitAddr splits "ip:port", "[ipv6]:port" or "ipv6:port" (haproxy's
// last-colon rule); port 0 when there is none.
func splitAddr(a string) (string, int) {
	if h, p, err := net.SplitHostPort(a); err == nil {
		port, _ := strconv.Atoi(p)
		return h, port
	}
	if i := strings.LastIndex(a, ":"); i >= 0 {
		if port, err := strconv.Atoi(a[i+1:]); err == nil {
			return a[:i], port
		}
	}
	return a, 0
}

// EditServer rewrites backend/server's line as c says: the address and
// port, "weight N", and "disabled" for maint (drain has no config
// keyword: it is a runtime state, carried across reloads by the server
// state haguard hands over). It returns the file it changed.
func EditServer(configs []string, read func(string) ([]byte, bool), c ServerChange) (map[string][]byte, error) {
	sl, err := FindServer(configs, read, c.Backend, c.Server)
	if err != nil {
		return nil, err
	}
	b, _ := read(sl.File)
	lines := strings.Split(string(b), "\n")
	l := lines[sl.Line-1]
	fields, comment := splitLine(l)
	indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
	if c.Addr != "" {
		_, port := splitAddr(fields[2])
		if c.Port != 0 {
			port = c.Port
		}
		addr := c.Addr
		if port != 0 {
			addr += ":" + strconv.Itoa(port)
		}
		fields[2] = addr
	}
	if c.Weight != nil {
		set := false
		for i := 3; i+1 < len(fields); i++ {
			if fields[i] == "weight" {
				fields[i+1] = strconv.Itoa(*c.Weight)
				set = true
			}
		}
		if !set {
			fields = append(fields, "weight", strconv.Itoa(*c.Weight))
		}
	}
	if c.State != "" {
		kept := fields[:3]
		for _, f := range fields[3:] {
			if f != "disabled" && f != "enabled" {
				kept = append(kept, f)
			}
		}
		fields = kept
		if c.State == StateMaint {
			fields = append(fields, "disabled")
		}
	}
	nl := indent + strings.Join(fields, " ")
	if comment != "" {
		nl += " " + comment
	}
	lines[sl.Line-1] = nl
	return map[string][]byte{sl.File: []byte(strings.Join(lines, "\n"))}, nil
}

// MapInConfig says whether a config file of the set loads the map at
// path (names it): only such a file is written.
func MapInConfig(configs []string, read func(string) ([]byte, bool), path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("map %s: want its absolute path, as the config names it", path)
	}
	for _, f := range configs {
		if b, ok := read(f); ok && bytes.Contains(b, []byte(path)) {
			return nil
		}
	}
	return fmt.Errorf("map %s: no config file of the set loads it: %w", path, ErrNotFound)
}

// EditMap applies c to a map file's content: add appends the entry, set
// replaces the value of every line of the key, del removes them.
func EditMap(b []byte, c MapChange) ([]byte, error) {
	var out []string
	found := false
	text := string(b)
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if text == "" {
		lines = nil
	}
	for _, l := range lines {
		fields, _ := splitLine(l)
		if len(fields) == 0 || fields[0] != c.Key {
			out = append(out, l)
			continue
		}
		found = true
		switch c.Op {
		case MapAdd:
			return nil, fmt.Errorf("map %s key %s: %w", c.Map, c.Key, ErrExists)
		case MapSet:
			out = append(out, c.Key+" "+c.Value)
		}
	}
	switch {
	case c.Op == MapAdd:
		out = append(out, c.Key+" "+c.Value)
	case !found:
		return nil, fmt.Errorf("map %s key %s: not in the file: %w", c.Map, c.Key, ErrNotFound)
	}
	if len(out) == 0 {
		return []byte{}, nil
	}
	return []byte(strings.Join(out, "\n") + "\n"), nil
}

// ParseMapFile reads a map file's entries (comments and blank lines
// left out).
func ParseMapFile(b []byte) []Entry {
	var es []Entry
	for _, l := range strings.Split(string(b), "\n") {
		fields, _ := splitLine(l)
		if len(fields) == 0 {
			continue
		}
		es = append(es, Entry{Key: fields[0], Value: strings.Join(fields[1:], " ")})
	}
	return es
}

// Drift says where a process's server differs from its config line:
// maint against "disabled", the weight, the address and port. drain is
// a runtime state with no config keyword, so it is no drift.
func Drift(s Server, c ConfigServer) []string {
	out := []string{}
	// Only forced maintenance is set on the runtime API: a server in
	// maint through DNS resolution, tracking or its host is no drift.
	if (s.Admin&admForcedMaint != 0) != c.Disabled {
		out = append(out, fmt.Sprintf("state %s, config %s", s.State, map[bool]string{true: "disabled", false: "enabled"}[c.Disabled]))
	}
	if w := c.WeightOr(s.InitWeight); s.Weight != w {
		out = append(out, fmt.Sprintf("weight %d, config %d", s.Weight, w))
	}
	if c.Addr != "" && net.ParseIP(c.Addr) != nil && (s.Addr != c.Addr || c.Port != 0 && s.Port != c.Port) {
		out = append(out, fmt.Sprintf("address %s:%d, config %s:%d", s.Addr, s.Port, c.Addr, c.Port))
	}
	return out
}
