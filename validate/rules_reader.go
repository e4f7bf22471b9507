package validate

import (
	"errors"
	"fmt"
	"strings"
)

// Rule family: how haproxy reads the files (HA017 to HA020), from
// what the reader noticed (Config.Notes).

func readerRules() []Rule {
	return []Rule{
		{ID: "HA017", Severity: SevWarning, Title: "Environment variable not set and without a default", Eval: evalHA017},
		{ID: "HA018", Severity: SevError, Title: "Line haproxy refuses to read", Eval: evalHA018},
		{ID: "HA019", Severity: SevWarning, Title: "Message written in the config", Eval: evalHA019},
		{ID: "HA020", Severity: SevWarning, Title: "Variable outside double quotes is not expanded", Eval: evalHA020},
	}
}

func notesOf(in *Input, kind NoteKind) []Note {
	var out []Note
	for _, n := range in.Config.Notes {
		if n.Kind == kind {
			out = append(out, n)
		}
	}
	return out
}

func evalHA017(in *Input) []Finding {
	var out []Finding
	for _, n := range notesOf(in, NoteUnsetVar) {
		f := in.finding(SevWarning, n.Pos,
			fmt.Sprintf("\"$%s\" is not set in haproxy's environment and has no default: haproxy reads an empty value here", n.Var),
			fmt.Sprintf("set %s where haproxy gets its environment (the unit's Environment= or EnvironmentFile=, or `setenv` in global), or give a default: \"${%s-value}\"", n.Var, n.Var))
		f.Key = n.Var
		out = append(out, f)
	}
	return out
}

func evalHA018(in *Input) []Finding {
	var out []Finding
	for _, n := range notesOf(in, NoteRefused) {
		f := in.finding(SevError, n.Pos, "haproxy refuses this: "+n.Text,
			"fix the line as the message says; `haproxy -c` reports the same")
		f.Key = n.Text
		out = append(out, f)
	}
	// Time values haproxy cannot read (an overflow is HA004's).
	for _, v := range in.timeValues() {
		_, err := ParseTime(v.raw, v.base)
		if err == nil || errors.Is(err, ErrTimerOverflow) {
			continue
		}
		f := in.finding(SevError, v.pos, fmt.Sprintf("haproxy refuses this: '%s' needs a time such as 5s, got %q (%v)", v.kw, v.raw, err),
			fmt.Sprintf("write a number and a unit: `%s 5s`", v.kw))
		f.Key = v.key
		out = append(out, f)
	}
	return out
}

func evalHA019(in *Input) []Finding {
	var out []Finding
	for _, n := range notesOf(in, NoteMessage) {
		f := in.finding(n.Level, n.Pos, "the config says "+n.Text+" on this target",
			"read the message: the config's author wrote it for this case")
		f.Key = n.Text
		out = append(out, f)
	}
	return out
}

func evalHA020(in *Input) []Finding {
	var out []Finding
	for _, n := range notesOf(in, NoteLiteralVar) {
		name := strings.Trim(n.Var, "${}")
		f := in.finding(SevWarning, n.Pos,
			fmt.Sprintf("%s is outside double quotes: haproxy does not expand it and reads %q as it is", n.Var, n.Var),
			fmt.Sprintf("write \"${%s}\" in double quotes if the variable is meant (single-quote or escape the $ if the text is meant)", name))
		f.Key = n.Var
		out = append(out, f)
	}
	return out
}
