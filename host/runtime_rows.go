package host

import (
	"context"
	"os"

	"github.com/haguard/haguard/agent/runtime"
)

// ServerRow is one server as every live process holds it.
type ServerRow struct {
	Backend   string         `json:"backend"`
	Server    string         `json:"server"`
	Config    *ConfigServer  `json:"config,omitempty"`
	Processes []ServerInProc `json:"processes"`
	Drift     []string       `json:"drift"`
}

// ConfigServer is what a server line says.
type ConfigServer struct {
	Addr     string `json:"addr"`
	Port     int    `json:"port"`
	Weight   int    `json:"weight"`
	Disabled bool   `json:"disabled"`
}

// ServerInProc is a server as one process holds it.
type ServerInProc struct {
	PID      int32          `json:"pid"`
	Current  bool           `json:"current"`
	Server   runtime.Server `json:"state"`
	Sessions int            `json:"sessions"`
}

// ServerRows reads every server of backend ("" all) in every live process.
func ServerRows(ctx context.Context, rt *runtime.Runtime, configs []string, backend string) ([]ServerRow, error) {
	ps, err := rt.Processes(ctx)
	if err != nil {
		return nil, err
	}
	var rows []ServerRow
	index := map[string]int{}
	read := func(p string) ([]byte, bool) {
		b, err := os.ReadFile(p)
		return b, err == nil
	}
	for _, p := range ps {
		ss, err := rt.Servers(ctx, p.PID, backend)
		if err != nil {
			if p.Current {
				return nil, err
			}
			continue
		}
		sess, _ := rt.At(ctx, p.PID, "show sess")
		for _, s := range ss {
			k := s.Backend + "/" + s.Name
			i, ok := index[k]
			if !ok {
				i = len(rows)
				index[k] = i
				row := ServerRow{Backend: s.Backend, Server: s.Name, Drift: []string{}}
				if sl, err := runtime.FindServer(configs, read, s.Backend, s.Name); err == nil {
					cs := runtime.ParseServerLine(sl.Fields)
					row.Config = &ConfigServer{Addr: cs.Addr, Port: cs.Port, Weight: cs.WeightOr(s.InitWeight), Disabled: cs.Disabled}
					row.Drift = runtime.Drift(s, cs)
				}
				rows = append(rows, row)
			}
			rows[i].Processes = append(rows[i].Processes, ServerInProc{PID: p.PID, Current: p.Current, Server: s,
				Sessions: runtime.CountSessions(sess, s.Backend, s.Name)})
		}
	}
	return rows, nil
}
