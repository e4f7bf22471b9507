package host

import (
	"context"
	"errors"
	"fmt"

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
