package validate

import "time"

// Route is one path a connection can take: a frontend (or listen) to a
// backend (or the listen itself), via a default_backend or use_backend
// line. Rules about idle time are evaluated per route, because the client
// timeout lives on the frontend and the server timeout on the backend.
type Route struct {
	Front *Proxy
	Back  *Proxy
	Via   Pos // the use_backend/default_backend line; the listen header for a listen
}

// Routes lists every route of cfg: each listen with servers to itself, and
// each frontend or listen to every backend its use_backend/default_backend
// lines name. Dynamic names (with %[...]), unknown backends and disabled
// proxies (see Live) are skipped.
func Routes(cfg *Config) []Route {
	var out []Route
	add := func(fe *Proxy, ref *Ref, seen map[*Proxy]bool) {
		be := cfg.Backend(ref.Backend)
		if be == nil || seen[be] || be.Disabled() {
			return
		}
		seen[be] = true
		out = append(out, Route{Front: fe, Back: be, Via: ref.Pos})
	}
	for _, fe := range cfg.LiveFrontends() {
		seen := map[*Proxy]bool{}
		if fe.Kind == KindListen && len(fe.Servers) > 0 {
			seen[fe] = true
			out = append(out, Route{Front: fe, Back: fe, Via: fe.Pos})
		}
		for i := range fe.UseBackends {
			add(fe, &fe.UseBackends[i], seen)
		}
		if db := fe.effDefaultBackend(); db != nil {
			add(fe, db, seen)
		}
	}
	return out
}

// effDefaultBackend resolves default_backend through the defaults chain.
func (p *Proxy) effDefaultBackend() *Ref {
	for q := p; q != nil; q = q.Defaults {
		if q.DefaultBackend != nil {
			return q.DefaultBackend
		}
	}
	return nil
}

// Mode is the route's mode: the frontend's (HAProxy refuses a mismatch).
func (r Route) Mode() string { return r.Front.EffMode().Value }

// Client, Server and Tunnel are the route's effective timers.
func (r Route) Client() TimeSetting { return r.Front.EffTimeout("client") }

// Server is the backend's effective `timeout server`.
func (r Route) Server() TimeSetting { return r.Back.EffTimeout("server") }

// Tunnel is the backend's effective `timeout tunnel`.
func (r Route) Tunnel() TimeSetting { return r.Back.EffTimeout("tunnel") }

// Idle is HA_idle (RULES.md §2) for a tcp route: tunnel when set (it
// supersedes client and server once no analyzer remains), else the smaller
// of client and server. It returns Infinite when nothing bounds the idle
// time, and the timer that wins (zero TimeSetting when Infinite).
func (r Route) Idle() (time.Duration, TimeSetting) {
	if t := r.Tunnel(); t.Set() {
		return t.Time.D, t
	}
	c, s := r.Client(), r.Server()
	switch {
	case !c.Set() && !s.Set():
		return Infinite, TimeSetting{}
	case !s.Set() || (c.Set() && c.Time.D <= s.Time.D):
		if !c.Set() {
			return s.Time.D, s
		}
		return c.Time.D, c
	default:
		return s.Time.D, s
	}
}

// Name is "frontend 'a' → backend 'b'" (or "listen 'a'") for messages.
func (r Route) Name() string {
	if r.Front == r.Back {
		return string(r.Front.Kind) + " '" + r.Front.Name + "'"
	}
	return string(r.Front.Kind) + " '" + r.Front.Name + "' → " + string(r.Back.Kind) + " '" + r.Back.Name + "'"
}
