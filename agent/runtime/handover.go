package runtime

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Server state across reloads. haproxy's own server-state-file restores
// the old address and port of a server whose line changed (haproxy
// issues 1412, 2103, 2506); haguard instead reads the servers from the
// current worker before a reload, and once the new generation runs sets
// again, in its workers, what was set at runtime (drain, maint, a
// weight) on the servers whose line the reload left alone. A server
// whose line changed in anything else (address, port, TLS, checks...)
// starts fresh, as its new line says.

// Snapshot is every server as the current worker held it.
type Snapshot []Server

// Dump reads every server from the current generation's first worker.
func (r *Runtime) Dump(ctx context.Context) (Snapshot, error) {
	ps, err := r.Processes(ctx)
	if err != nil {
		return nil, err
	}
	ss, err := r.Servers(ctx, ps[0].PID, "")
	return Snapshot(ss), err
}

// Carried is what Restore did with one server.
type Carried struct {
	Backend string `json:"backend"`
	Server  string `json:"server"`
	// Change is what was set again ("" when dropped).
	Change string `json:"change,omitempty"`
	// Dropped says why the server starts fresh.
	Dropped string `json:"dropped,omitempty"`
}

// Plan decides, from the snapshot and the server lines before and after
// the reload, what to set again in the new generation.
func (s Snapshot) Plan(before, after func(backend, server string) ([]string, bool)) ([]ServerChange, []Carried) {
	var out []ServerChange
	var report []Carried
	for _, sv := range s {
		forcedMaint := sv.Admin&admForcedMaint != 0
		oldF, okOld := before(sv.Backend, sv.Name)
		if !okOld {
			continue
		}
		oldC := ParseServerLine(oldF)
		drain := sv.State == StateDrain
		maint := forcedMaint && !oldC.Disabled
		weight := sv.Weight != oldC.WeightOr(sv.InitWeight)
		if !drain && !maint && !weight {
			continue
		}
		c := Carried{Backend: sv.Backend, Server: sv.Name}
		newF, okNew := after(sv.Backend, sv.Name)
		switch {
		case !okNew:
			c.Dropped = "no server line in the new config"
		case !slices.Equal(identity(oldF), identity(newF)):
			c.Dropped = "its line changed (" + strings.Join(newF[2:], " ") + "): starts fresh"
		}
		if c.Dropped != "" {
			report = append(report, c)
			continue
		}
		newC := ParseServerLine(newF)
		ch := ServerChange{Backend: sv.Backend, Server: sv.Name}
		switch {
		case drain:
			ch.State = StateDrain
		case maint && !newC.Disabled:
			ch.State = StateMaint
		}
		if weight && newC.WeightSet == oldC.WeightSet && newC.Weight == oldC.Weight {
			w := sv.Weight
			ch.Weight = &w
		}
		if ch.State == "" && ch.Weight == nil {
			c.Dropped = "the new line sets it"
			report = append(report, c)
			continue
		}
		c.Change = ch.String()
		report = append(report, c)
		out = append(out, ch)
	}
	return out, report
}

// identity is a server line without what runtime state overrides (weight,
// disabled, enabled): what must be equal for the state to carry over.
func identity(fields []string) []string {
	var out []string
	for i := 0; i < len(fields); i++ {
		switch fields[i] {
		case "weight":
			i++
			continue
		case "disabled", "enabled":
			continue
		}
		out = append(out, fields[i])
	}
	return out
}

// SetIn applies c to the current generation's workers only (the
// hand-over after a reload), read back from each.
func (r *Runtime) SetIn(ctx context.Context, c ServerChange) error {
	ps, err := r.Processes(ctx)
	if err != nil {
		return err
	}
	s := serverStep{c}
	for _, p := range ps {
		if !p.Current {
			continue
		}
		var res ProcResult
		answer, err := s.apply(ctx, r, p)
		if err == nil && answer != "" {
			err = fmt.Errorf("%s", answer)
		}
		if err == nil {
			err = s.check(ctx, r, p, &res)
		}
		if err != nil {
			return fmt.Errorf("worker %s: %s: %w", strconv.Itoa(int(p.PID)), c, err)
		}
	}
	return nil
}
