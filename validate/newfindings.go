package validate

// NewFindings returns the findings of the candidate config that the
// running config does not already have, in the candidate's order: what
// a reload should block on (its error ones) unless the operator asked
// for --strict. Only the candidate's new problems stop a reload, so a
// finding someone has lived with for months does not block an unrelated
// change.
//
// Two findings are the same when they have the same rule, section and
// Key (what the finding is about: "timeout server", a route, a server),
// whatever their line: lines move when someone edits above them, and
// values change when someone tunes them (Key leaves the values out). A
// finding without a Key falls back on its message. Each running finding
// matches one candidate finding at most, so a second copy of a problem
// is new.
//
// Both lists must come from the same haguard (the same rules, messages
// and keys): lint the running config again rather than reading old
// findings from an audit record written by another version.
func NewFindings(candidate, running []Finding) []Finding {
	have := make(map[findingID]int, len(running))
	for _, f := range running {
		have[idOf(f)]++
	}
	var out []Finding
	for _, f := range candidate {
		id := idOf(f)
		if have[id] > 0 {
			have[id]--
			continue
		}
		out = append(out, f)
	}
	return out
}

type findingID struct{ rule, section, key string }

func idOf(f Finding) findingID {
	key := f.Key
	if key == "" {
		key = defaultKey(f.Message)
	}
	return findingID{f.Rule, f.Section, key}
}
