package validate

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Rule family: how time values are written (HA001, HA002, HA004).

// timeValue is one time written anywhere in the config.
type timeValue struct {
	kw    string // as printed: "timeout server", "inter", "srvtcpka-idle"
	short string // "server", "inter", "hard-stop-after" (for HA001's classes)
	raw   string
	base  Base
	pos   Pos
	// key names the value within its section: the keyword, and the server
	// for a server line's parameter ("inter on server s1").
	key string
}

// timeValues collects every time value the model knows, once per line;
// HA001, HA002 and HA004 share the list.
func (in *Input) timeValues() []timeValue {
	if in.times == nil {
		in.times = collectTimeValues(in.Config)
	}
	return in.times
}

func collectTimeValues(cfg *Config) []timeValue {
	var out []timeValue
	add := func(v timeValue) { out = append(out, v) }
	serverTimes := []string{"inter", "fastinter", "downinter", "tcp-ut"}
	for _, p := range cfg.AllSections() {
		for name, t := range p.Timeouts {
			add(timeValue{kw: t.Keyword, short: name, raw: t.Time.Raw, base: Millis, pos: t.Pos, key: t.Keyword})
		}
		for name, t := range p.KA {
			if kaKnobs[name] {
				add(timeValue{kw: name, short: name, raw: t.Time.Raw, base: Seconds, pos: t.Pos, key: name})
			}
		}
		// scan adds the time parameters of one list; pos overrides the
		// params' own (zero for server lines, which share their lists).
		scan := func(ps Params, pos Pos, owner string) {
			for _, name := range serverTimes {
				if prm, ok := ps.Get(name); ok {
					if pos.Line > 0 {
						prm.Pos = pos
					}
					add(timeValue{kw: name, short: name, raw: prm.Value, base: Millis, pos: prm.Pos, key: name + " on " + owner})
				}
			}
		}
		scan(p.DefaultServer, Pos{}, "default-server")
		for _, s := range p.Servers {
			scan(s.Params, s.Pos, "server "+s.Name)
		}
		for i, b := range p.Binds {
			// "bind a:1,b:2 tcp-ut 5" shares one parameter list: count it once.
			if i == 0 || b.Pos != p.Binds[i-1].Pos {
				scan(b.Params, Pos{}, "bind "+b.Address)
			}
		}
	}
	return out
}

func bareDigits(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// secondsLike are values people write meaning seconds (RULES.md HA001):
// on an idle timer, 1800 ms or 28800 ms is never what was meant.
var secondsLike = map[uint64]bool{30: true, 50: true, 60: true, 120: true, 300: true, 600: true, 900: true,
	1800: true, 3600: true, 7200: true, 14400: true, 28800: true, 43200: true, 86400: true}

// idleKeywords are the timers that bound how long a connection may stay
// idle: a sub-second value there is never intended, and a bare 3600 is
// 3.6 s. The other timers (connect, check, queue, tarpit, http-request,
// client-hs, inter, fastinter, downinter, tcp-ut) are commonly written in
// milliseconds: `timeout check 300` or `inter 1000` are what they say.
var idleKeywords = map[string]bool{"client": true, "server": true, "tunnel": true, "client-fin": true,
	"server-fin": true, "http-keep-alive": true, "hard-stop-after": true}

// suspiciouslySmall is haproxy 3.1's own threshold: a bare value below
// 100 on any timer draws a warning there.
const suspiciouslySmall = 100

func timeUnitRules() []Rule {
	return []Rule{
		{ID: "HA001", Severity: SevError, Title: "Unitless timeout that is really seconds", Eval: evalHA001},
		{ID: "HA002", Severity: SevWarning, Title: "Unitless keepalive knob that is really milliseconds", Eval: evalHA002},
		{ID: "HA004", Severity: SevError, Title: "Timeout overflow", Eval: evalHA004},
	}
}

// evalHA001: on an idle timer, a bare value below 1000 or one of the
// seconds-like values is an error; on any other timer, a bare value below
// 100 is a warning (what haproxy 3.1+ calls suspiciously small), and
// anything else stands.
func evalHA001(in *Input) []Finding {
	var out []Finding
	for _, v := range in.timeValues() {
		if v.base != Millis {
			continue
		}
		n, ok := bareDigits(v.raw)
		if !ok || n == 0 || n >= 1<<40 {
			continue // 0 = unset; huge values are HA004's
		}
		ms := time.Duration(n) * time.Millisecond
		asSec := FormatDuration(time.Duration(n) * time.Second)
		var f Finding
		switch {
		case idleKeywords[v.short] && (n < 1000 || secondsLike[n]):
			f = in.finding(SevError, v.pos,
				fmt.Sprintf("%s %s is %s (a number without a unit is milliseconds); did you mean %ss?", v.kw, v.raw, FormatDuration(ms), v.raw),
				fmt.Sprintf("add the unit: `%s %ss` (= %s); write `%sms` if milliseconds are really meant", v.kw, v.raw, asSec, v.raw))
		case !idleKeywords[v.short] && n < suspiciouslySmall:
			f = in.finding(SevWarning, v.pos,
				fmt.Sprintf("%s %s is %s (a number without a unit is milliseconds), which haproxy 3.1+ calls suspiciously small", v.kw, v.raw, FormatDuration(ms)),
				fmt.Sprintf("write the unit: `%s %sms` if milliseconds are meant, `%s %ss` if seconds", v.kw, v.raw, v.kw, v.raw))
		default:
			continue
		}
		f.Key = v.key
		out = append(out, f)
	}
	return out
}

func evalHA002(in *Input) []Finding {
	var out []Finding
	for _, v := range in.timeValues() {
		if v.base != Seconds {
			continue
		}
		n, ok := bareDigits(v.raw)
		if !ok || n < 1000 || n >= 1<<40 {
			continue
		}
		f := in.finding(SevWarning, v.pos,
			fmt.Sprintf("%s %s is %s (a number without a unit is seconds here)", v.kw, v.raw, FormatDuration(time.Duration(n)*time.Second)),
			fmt.Sprintf("write the unit: `%s %s` if %s ms was meant; *tcpka-idle/intvl read bare numbers as seconds",
				v.kw, FormatDuration(time.Duration(n)*time.Millisecond), v.raw))
		f.Key = v.key
		out = append(out, f)
	}
	return out
}

func evalHA004(in *Input) []Finding {
	var out []Finding
	for _, v := range in.timeValues() {
		if _, err := ParseTime(v.raw, v.base); errors.Is(err, ErrTimerOverflow) {
			f := in.finding(SevError, v.pos,
				fmt.Sprintf("timer overflow in argument '%s' to '%s' (maximum value is 2147483647 ms or ~24.8 days)", v.raw, v.kw),
				fmt.Sprintf("use at most 24d: `%s 24d`, or a smaller value", v.kw))
			f.Key = v.key
			out = append(out, f)
		}
	}
	return out
}
