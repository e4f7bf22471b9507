package generations

import (
	"strings"
)

// Session is one line of a worker's `show sess`.
type Session struct {
	// ID is the stream's address, the argument of `shutdown session`.
	ID       string `json:"id"`
	Src      string `json:"src"`
	Frontend string `json:"frontend"`
	Backend  string `json:"backend"`
	Server   string `json:"server"`
	Age      string `json:"age"`
	// Calls counts the stream's wake-ups: unchanged between two looks,
	// nothing moved on it in between (it is idle).
	Calls string `json:"calls"`
}

// Holder names who holds the session, for logs and status:
// "127.0.0.1:51736 -> echo/s1 (age 8s)".
func (s Session) Holder() string {
	h := s.Src + " -> " + s.Backend
	if s.Server != "" && s.Server != "<none>" {
		h += "/" + s.Server
	}
	return h + " (age " + s.Age + ")"
}

// ParseShowSess reads `show sess` (the short form, haproxy 2.0 to 3.x),
// leaving out the CLI's own session (frontend GLOBAL) that asked.
func ParseShowSess(text string) []Session {
	var out []Session
	for line := range strings.SplitSeq(text, "\n") {
		id, rest, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || !strings.HasPrefix(id, "0x") {
			continue
		}
		s := Session{ID: id}
		for f := range strings.FieldsSeq(rest) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			switch k {
			case "src":
				s.Src = v
			case "fe":
				s.Frontend = v
			case "be":
				s.Backend = v
			case "srv":
				s.Server = v
			case "age":
				s.Age = v
			case "calls":
				s.Calls = v
			}
		}
		if s.Frontend == "GLOBAL" {
			continue
		}
		out = append(out, s)
	}
	return out
}
