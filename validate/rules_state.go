package validate

// Rule family: runtime server state across reloads (HA021).

func stateRules() []Rule {
	return []Rule{
		{ID: "HA021", Severity: SevWarning, Title: "Hand-managed server state file restores stale servers", Eval: evalHA021},
	}
}

// evalHA021: global has server-state-file and a defaults or backend
// section loads it. haproxy then restores, from the file written before
// the reload, a server's address and port even when its line changed in
// the new config (haproxy issues 1412, 2103, 2506).
func evalHA021(in *Input) []Finding {
	var file *Directive
	for i, d := range in.Config.Global.Directives {
		if len(d.Words) > 1 && d.Words[0] == "server-state-file" {
			file = &in.Config.Global.Directives[i]
		}
	}
	if file == nil {
		return nil
	}
	var out []Finding
	sections := append(append([]*Proxy{}, in.Config.Defaults...), in.Config.Backends...)
	sections = append(sections, in.Config.Listens...)
	for _, p := range sections {
		for _, d := range p.Directives {
			if len(d.Words) < 2 || d.Words[0] != "load-server-state-from-file" || d.Words[1] == "none" {
				continue
			}
			f := in.finding(SevWarning, d.Pos,
				"server state is loaded from "+file.Words[1]+", written by hand before each reload: haproxy restores from it the old address and port of a server whose line the new config changed, so a moved server keeps pointing at its old place",
				"let haguard carry drain, maint and weights across reloads (it drops the servers whose line changed; docs/runtime.md) and remove server-state-file and load-server-state-from-file; or empty the state file whenever a server's address, port, TLS or checks change")
			f.Key = "load-server-state-from-file"
			out = append(out, f)
		}
	}
	return out
}
