package generations

import (
	"fmt"
	"strconv"
	"strings"
	"time"
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
	// Calls counts the stream's wake-ups. In TCP mode data is forwarded
	// without waking the stream, so it moves only on some events.
	Calls string `json:"calls"`
	// ReqRead and ResRead are the time left before the read timeout of
	// the client and the server side: rq[rx=] and rp[rx=] up to 2.x,
	// scf=[rex=] and scb=[rex=] from 3.0, where the timeouts moved to the
	// stream connectors; -1 when none is set. Every read pushes it back: a
	// deadline (look + left) that did not move between two looks means
	// nothing was read on that side in between.
	ReqRead, ResRead time.Duration `json:"-"`
}

// idleSince reports whether s did not move between an earlier look at
// prev (at t0) and this one (at t1, which took rtt to answer): nothing
// was read on either side. Every read pushes a side's read deadline back;
// a deadline is the look's time plus the time left, which haproxy prints
// in whole seconds, and each time is taken when the answer has arrived,
// up to rtt after haproxy wrote it: a deadline that moved by less than
// 1 s + rtt has not been pushed back.
//
// With both deadlines known, that is the whole answer: a wake-up with no
// read on either side is haproxy's own (seen on 3.0 in the sandbox: an
// idle session of a stopping worker woken once, calls=2 then 3, neither
// deadline moved), and in TCP mode data is forwarded without waking the
// stream at all, so the wake-ups tell nothing either way. With one deadline only, the wake-ups must not have
// moved either (the other side is not seen). With none, nothing tells a
// busy session from an idle one: it is never called idle. When it is not
// idle, why says what moved.
func (s Session) idleSince(prev Session, t0, t1 time.Time, rtt time.Duration) (idle bool, why string) {
	known := 0
	for i, p := range [][2]time.Duration{{prev.ReqRead, s.ReqRead}, {prev.ResRead, s.ResRead}} {
		if p[0] < 0 || p[1] < 0 {
			continue
		}
		known++
		if moved := t1.Add(p[1]).Sub(t0.Add(p[0])); moved >= time.Second+max(rtt, 0) {
			return false, fmt.Sprintf("read on the %s side (its read deadline moved %s later)", [2]string{"client", "server"}[i], moved.Round(100*time.Millisecond))
		}
	}
	switch {
	case known == 0:
		return false, "no read deadline to tell busy from idle"
	case known == 1 && s.Calls != prev.Calls:
		return false, fmt.Sprintf("woken (calls %s, then %s) with one side's read deadline unknown", prev.Calls, s.Calls)
	}
	return true, ""
}

// parseHumanTime reads haproxy's human_time ("59m51s", "1d2h", "0s");
// -1 for an empty or unreadable one ("", "<PAST>", "<NEVER>").
func parseHumanTime(v string) time.Duration {
	if v == "" {
		return -1
	}
	var d time.Duration
	num := ""
	for _, r := range v {
		switch {
		case r >= '0' && r <= '9':
			num += string(r)
			continue
		case num == "":
			return -1
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			return -1
		}
		num = ""
		switch r {
		case 'd':
			d += time.Duration(n) * 24 * time.Hour
		case 'h':
			d += time.Duration(n) * time.Hour
		case 'm':
			d += time.Duration(n) * time.Minute
		case 's':
			d += time.Duration(n) * time.Second
		default:
			return -1
		}
	}
	if num != "" {
		return -1
	}
	return d
}

// readLeft reads the read timeout's time left, key= (rx= or rex=), out
// of a bracketed field: "rq[f=848000h,i=0,an=00h,rx=59m51s,wx=,ax=]"
// (2.x) or "scf=[8,0h,fd=13,rex=59s,wex=]" (3.0).
func readLeft(f, key string) time.Duration {
	_, in, ok := strings.Cut(f, "[")
	if !ok {
		return -1
	}
	for kv := range strings.SplitSeq(strings.TrimSuffix(in, "]"), ",") {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return parseHumanTime(v)
		}
	}
	return -1
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
		s := Session{ID: id, ReqRead: -1, ResRead: -1}
		for f := range strings.FieldsSeq(rest) {
			switch {
			case strings.HasPrefix(f, "rq["):
				s.ReqRead = readLeft(f, "rx")
				continue
			case strings.HasPrefix(f, "rp["):
				s.ResRead = readLeft(f, "rx")
				continue
			case strings.HasPrefix(f, "scf=["):
				if v := readLeft(f, "rex"); v >= 0 {
					s.ReqRead = v
				}
				continue
			case strings.HasPrefix(f, "scb=["):
				if v := readLeft(f, "rex"); v >= 0 {
					s.ResRead = v
				}
				continue
			}
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
