package reload

import (
	"fmt"
	"strings"

	"github.com/haguard/haguard/validate"
)

// Backend policies (haguard.yaml reload.backends): what the new
// generation's servers must look like once their first health check is
// done.
const (
	// BackendsPreviouslyUp: a server that was UP before the reload is UP
	// after it, unless the candidate removed or disabled it; a backend
	// that is new needs at least one server UP.
	BackendsPreviouslyUp = "previously-up"
	// BackendsAnyUp: every backend with servers has at least one UP.
	BackendsAnyUp = "any-up"
	// BackendsIgnore: server health is reported, never judged.
	BackendsIgnore = "ignore"
)

// healthy reports whether a server passes its checks: UP (also "UP 1/3":
// a new generation starts its servers at the bottom of the UP range, and
// one failed check from there is DOWN), DRAIN and NOLB (weight 0 or a
// 404 check: the operator's choice), or no check.
func (s ServerHealth) healthy() bool {
	return strings.HasPrefix(s.Status, "UP") || s.Status == "DRAIN" || s.Status == "NOLB" || s.Status == "no check"
}

func (s ServerHealth) key() string { return s.Backend + "/" + s.Server }

// checkText is the last check as haproxy prints it: "L4CON", "L7STS 503".
func (s ServerHealth) checkText() string {
	if s.Code != 0 {
		return fmt.Sprintf("%s %d", s.Check, s.Code)
	}
	return s.Check
}

// backendVerdict judges the servers after the reload (the new
// generation's, first checks done) against those before it, under
// policy. cfg is the candidate (nil: unknown), whose disabled servers are
// exempt. It returns one line per violation.
func backendVerdict(policy string, before, after []ServerHealth, cfg *validate.Config) []string {
	if policy == BackendsIgnore || len(after) == 0 {
		return nil
	}
	was := map[string]ServerHealth{}
	oldBackend := map[string]bool{}
	for _, s := range before {
		was[s.key()] = s
		oldBackend[s.Backend] = true
	}
	byBackend := map[string][]ServerHealth{}
	var order []string
	for _, s := range after {
		if _, ok := byBackend[s.Backend]; !ok {
			order = append(order, s.Backend)
		}
		byBackend[s.Backend] = append(byBackend[s.Backend], s)
	}
	var out []string
	for _, be := range order {
		servers := byBackend[be]
		anyUp := false
		for _, s := range servers {
			anyUp = anyUp || s.healthy()
		}
		switch {
		case policy == BackendsAnyUp || !oldBackend[be]:
			if !anyUp {
				out = append(out, fmt.Sprintf("backend %s has no server UP: %s", be, describe(servers)))
			}
		default:
			for _, s := range servers {
				if w, ok := was[s.key()]; ok && w.healthy() && !s.healthy() && !disabledIn(cfg, s) {
					out = append(out, fmt.Sprintf("%s was %s before the reload, now %s %s", s.key(), w.Status, s.Status, s.checkText()))
				}
			}
		}
	}
	return out
}

func describe(ss []ServerHealth) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = strings.TrimSpace(fmt.Sprintf("%s %s %s", s.Server, s.Status, s.checkText()))
	}
	return strings.Join(parts, ", ")
}

// disabledIn reports whether cfg disables the server (or its backend):
// haproxy then has it in MAINT on purpose.
func disabledIn(cfg *validate.Config, s ServerHealth) bool {
	if cfg == nil {
		return false
	}
	be := cfg.Backend(s.Backend)
	if be == nil {
		return true // no such backend in the candidate: removed (a listen reads as one too)
	}
	if be.Disabled() {
		return true
	}
	for _, srv := range be.Servers {
		if srv.Name == s.Server {
			_, disabled := srv.Params.Get("disabled")
			return disabled
		}
	}
	return true // the candidate has no such server
}
