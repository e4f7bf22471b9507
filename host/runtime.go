package host

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/haguard/haguard/agent/runtime"
	"github.com/haguard/haguard/reload"
)

// Runtime applies runtime changes to every live process through the
// master CLI; an error without one (-S).
func (h *Host) Runtime() (*runtime.Runtime, error) {
	if h.mc == nil {
		return nil, errors.New("runtime changes need haproxy's master CLI (-S): the unit runs none")
	}
	rt := runtime.New(h.mc)
	rt.BeforeProcess = testBeforeProcess(h.log)
	return rt, nil
}

// ServerChange is c as a change the reload transaction applies and
// writes (reload.Reloader.ApplyRuntime); rep receives what each process
// did.
func ServerChange(rt *runtime.Runtime, c runtime.ServerChange, rep *runtime.Report) reload.RuntimeChange {
	return reload.RuntimeChange{
		What: fmt.Sprintf("server %s/%s: %s", c.Backend, c.Server, c),
		Edit: func(configs []string, read func(string) ([]byte, bool)) (map[string][]byte, error) {
			return runtime.EditServer(configs, read, c)
		},
		Apply: func(ctx context.Context) error {
			r, err := rt.SetServer(ctx, c)
			*rep = r
			return err
		},
		Revert: func(ctx context.Context) error { return rt.Revert(ctx, rep, c) },
	}
}

// MapChange is c as a change the reload transaction applies and writes
// into the map file.
func MapChange(rt *runtime.Runtime, c runtime.MapChange, rep *runtime.Report) reload.RuntimeChange {
	return reload.RuntimeChange{
		What: fmt.Sprintf("map %s: %s", c.Map, c),
		Edit: func(configs []string, read func(string) ([]byte, bool)) (map[string][]byte, error) {
			if err := runtime.MapInConfig(configs, read, c.Map); err != nil {
				return nil, err
			}
			b, ok := read(c.Map)
			if !ok {
				return nil, fmt.Errorf("map %s: cannot read the file", c.Map)
			}
			nb, err := runtime.EditMap(b, c)
			if err != nil {
				return nil, err
			}
			return map[string][]byte{c.Map: nb}, nil
		},
		Apply: func(ctx context.Context) error {
			r, err := rt.SetMap(ctx, c)
			*rep = r
			return err
		},
		Revert: func(ctx context.Context) error { return rt.Revert(ctx, rep, c) },
	}
}

// statePort carries runtime server state across a reload (reload's
// stateKeeper).
type statePort struct{ h *Host }

func (s statePort) Keep(ctx context.Context) (func(context.Context, reload.ConfigSet, reload.ConfigSet) (string, error), error) {
	rt, err := s.h.Runtime()
	if err != nil {
		return nil, err
	}
	snap, err := rt.Dump(ctx)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, before, after reload.ConfigSet) (string, error) {
		line := func(set reload.ConfigSet) func(string, string) ([]string, bool) {
			return func(be, srv string) ([]string, bool) {
				sl, err := runtime.FindServer(set.Files, set.Read, be, srv)
				return sl.Fields, err == nil
			}
		}
		changes, report := snap.Plan(line(before), line(after))
		var done, dropped []string
		var errs []error
		for _, c := range report {
			if c.Dropped != "" {
				dropped = append(dropped, fmt.Sprintf("%s/%s (%s)", c.Backend, c.Server, c.Dropped))
			}
		}
		for _, c := range changes {
			if err := rt.SetIn(ctx, c); err != nil {
				errs = append(errs, err)
				continue
			}
			done = append(done, fmt.Sprintf("%s/%s %s", c.Backend, c.Server, c))
		}
		var parts []string
		if len(done) > 0 {
			parts = append(parts, "carried: "+strings.Join(done, ", "))
		}
		if len(dropped) > 0 {
			parts = append(parts, "fresh: "+strings.Join(dropped, ", "))
		}
		detail := strings.Join(parts, "; ")
		return detail, errors.Join(errs...)
	}, nil
}

// stateKeeper is the reload's server-state hand-over; nil without a
// master CLI.
func (h *Host) stateKeeper() interface {
	Keep(context.Context) (func(context.Context, reload.ConfigSet, reload.ConfigSet) (string, error), error)
} {
	if h.mc == nil {
		return nil
	}
	return statePort{h}
}
