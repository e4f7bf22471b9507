package validate

import "strings"

// StatsSocket is the path of the first unix `stats socket` of the global
// section (the runtime API haguard reads `show stat` from), "" when the
// config has none (or only TCP ones).
func (c *Config) StatsSocket() string {
	if c == nil || c.Global == nil {
		return ""
	}
	for _, d := range c.Global.Directives {
		if len(d.Words) < 3 || d.Words[0] != "stats" || d.Words[1] != "socket" {
			continue
		}
		addr := d.Words[2]
		if rest, ok := strings.CutPrefix(addr, "unix@"); ok {
			return rest
		}
		if strings.HasPrefix(addr, "/") {
			return addr
		}
	}
	return ""
}
