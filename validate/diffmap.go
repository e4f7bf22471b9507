package validate

import (
	"fmt"
	"strings"
)

// DiffMap lists the entries that change in a map file (kind "map": a key
// and a value per line) or an ACL file (kind "acl": a pattern per line)
// that the config loads, in after's order, removed entries last. Every
// entry change is appliable at runtime: the master CLI's add, set and del
// map (acl) change the running processes' copy without a reload.
func DiffMap(kind, path string, before, after []byte) []Change {
	type entry struct {
		key, value string
		line       int
	}
	read := func(b []byte) (map[string]entry, []string) {
		m := map[string]entry{}
		var order []string
		for i, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			k, v := l, ""
			if kind == "map" {
				if f := strings.Fields(l); len(f) > 0 {
					k, v = f[0], strings.TrimSpace(strings.TrimPrefix(l, f[0]))
				}
			}
			if _, dup := m[k]; dup {
				continue // the first entry of a key is the one a lookup finds
			}
			m[k] = entry{k, v, i + 1}
			order = append(order, k)
		}
		return m, order
	}
	bm, border := read(before)
	am, aorder := read(after)
	var out []Change
	for _, k := range aorder {
		a := am[k]
		b, ok := bm[k]
		switch {
		case !ok:
			out = append(out, Change{Kind: kind, Op: OpAdded, Section: path, Name: k, After: a.value, File: path, Line: a.line, Runtime: true,
				How: strings.TrimSpace(fmt.Sprintf("add %s %s %s %s", kind, path, k, a.value))})
		case b.value != a.value:
			out = append(out, Change{Kind: kind, Op: OpChanged, Section: path, Name: k, Before: b.value, After: a.value, File: path, Line: a.line,
				Runtime: true, How: fmt.Sprintf("set map %s %s %s", path, k, a.value)})
		}
	}
	for _, k := range border {
		if _, ok := am[k]; !ok {
			b := bm[k]
			out = append(out, Change{Kind: kind, Op: OpRemoved, Section: path, Name: k, Before: b.value, File: path, Line: b.line, Runtime: true,
				How: fmt.Sprintf("del %s %s %s", kind, path, k)})
		}
	}
	return out
}
