package validate

// other starts a section the model does not interpret ("program x",
// "http-errors y", "ring z"...): its lines are kept as Directives so that
// the rules about what a config runs and loads (FileRefs, the candidate
// policy) read every section, not only the proxies.
func (b *builder) other(kind Kind, words []string, pos Pos) *Proxy {
	name := ""
	if len(words) > 1 {
		name = words[1]
	}
	p := newProxy(kind, name, pos)
	b.cfg.Others = append(b.cfg.Others, p)
	return p
}
