package api

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/singleflight"
)

// UnitBackend is one haproxy unit the API serves (Options embeds the
// first; `haguard serve --unit a --unit b` adds more): the daemon's
// adapters over that unit's reloader, sweeper and prober.
type UnitBackend struct {
	// Unit is its systemd unit name: the `unit` query parameter and the
	// metrics label.
	Unit     string
	Checker  Checker
	Reloader Reloader
	Hasher   ConfigHasher
	Ghosts   GhostSource
	Prober   Prober
	Status   StatusSource
	// Runtime changes servers and map entries without a reload; optional.
	Runtime RuntimeChanger
	// Metrics are the unit's series; nil creates them.
	Metrics *Metrics
	// JobDir keeps one small file per job (the job ledger), so that a
	// job's id answers after a restart, "lost" when the daemon stopped
	// before the job ended. Empty keeps jobs in memory only.
	JobDir string
}

// unit is one served unit with what the server keeps for it: its own
// queue (transactions of different units hold different locks and run
// side by side; those of one unit run one at a time), its metrics, and
// its shared status call.
type unit struct {
	UnitBackend
	queue       *queue
	statusCalls singleflight.Group
}

// backends lists Options' own unit first, then More.
func (o Options) backends() []UnitBackend {
	return append([]UnitBackend{o.UnitBackend}, o.More...)
}

// validate names what a unit lacks, and refuses two units of one name.
func validateBackends(bs []UnitBackend) error {
	seen := map[string]bool{}
	for i, b := range bs {
		var missing []string
		for _, f := range []struct {
			name string
			nil  bool
		}{{"Checker", b.Checker == nil}, {"Reloader", b.Reloader == nil}, {"Hasher", b.Hasher == nil},
			{"Ghosts", b.Ghosts == nil}, {"Prober", b.Prober == nil}, {"Status", b.Status == nil}} {
			if f.nil {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("api: options missing: %s", strings.Join(missing, ", "))
		}
		if len(bs) > 1 && b.Unit == "" {
			return fmt.Errorf("api: unit %d of %d has no name", i+1, len(bs))
		}
		if seen[b.Unit] {
			return fmt.Errorf("api: unit %s given twice", b.Unit)
		}
		seen[b.Unit] = true
	}
	return nil
}

// unitOf is the unit a request names with ?unit=. With one unit the
// parameter may be left out; with several it is required, so that a
// client never changes a unit it did not name.
func (s *Server) unitOf(c echo.Context) (*unit, error) {
	name := c.QueryParam("unit")
	if name == "" {
		if len(s.units) == 1 {
			return s.units[0], nil
		}
		return nil, &ValidationError{Field: "unit", Reason: "this daemon serves several units; name one: " + strings.Join(s.unitNames(), ", ")}
	}
	i := slices.IndexFunc(s.units, func(u *unit) bool { return u.Unit == name })
	if i < 0 {
		return nil, &ValidationError{Field: "unit", Reason: fmt.Sprintf("%q is not served here; the units are: %s", name, strings.Join(s.unitNames(), ", "))}
	}
	return s.units[i], nil
}

func (s *Server) unitNames() []string {
	names := make([]string, len(s.units))
	for i, u := range s.units {
		names[i] = u.Unit
		if names[i] == "" {
			names[i] = "(unnamed)"
		}
	}
	return names
}

// location is where a job of u is found, its unit named when the server
// has several.
func (s *Server) location(u *unit, id string) string {
	if len(s.units) == 1 {
		return "/v1/reloads/" + id
	}
	return "/v1/reloads/" + id + "?unit=" + url.QueryEscape(u.Unit)
}
