package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/haguard/haguard/agent/runtime"
	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/reload"
)

// The runtime routes (api.RuntimeChanger) over the current pieces: the
// same transaction as haguard server set and map add|set|del.

func (a apiAdapter) rt() (*runtime.Runtime, *pieces, error) {
	p := a.p()
	rt, err := p.host.Runtime()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", api.ErrNoRuntime, err)
	}
	return rt, p, nil
}

// Server implements api.RuntimeChanger: the server in every process.
func (a apiAdapter) Server(ctx context.Context, backend, server string) (any, error) {
	rt, p, err := a.rt()
	if err != nil {
		return nil, err
	}
	rows, err := host.ServerRows(ctx, rt, p.cfg().HAProxy.Configs, backend)
	if err != nil {
		if errors.Is(err, runtime.ErrNotFound) {
			return nil, fmt.Errorf("%w: %v", api.ErrNotFound, err)
		}
		return nil, err
	}
	for _, r := range rows {
		if r.Server == server {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: server %s/%s", api.ErrNotFound, backend, server)
}

// SetServer implements api.RuntimeChanger.
func (a apiAdapter) SetServer(ctx context.Context, req api.ServerRequest) (api.RuntimeOutcome, error) {
	rt, p, err := a.rt()
	if err != nil {
		return api.RuntimeOutcome{}, err
	}
	c := runtime.ServerChange{Backend: req.Backend, Server: req.Server, State: req.State, Weight: req.Weight}
	if req.Addr != "" {
		c.Addr = req.Addr
		if h, port, err := net.SplitHostPort(req.Addr); err == nil {
			c.Addr = h
			if c.Port, err = strconv.Atoi(port); err != nil {
				return api.RuntimeOutcome{}, &api.ValidationError{Field: "addr", Reason: "want IP or IP:PORT"}
			}
		}
	}
	if err := c.Validate(); err != nil {
		return api.RuntimeOutcome{}, &api.ValidationError{Reason: err.Error()}
	}
	res, err := host.ApplyRuntime(ctx, p.rel, rt, reload.Options{Who: apiWho, Reason: "api"}, req.IfMatch,
		func(rt *runtime.Runtime, rep *runtime.Report) reload.RuntimeChange {
			return host.ServerChange(rt, c, rep)
		})
	if err == nil && req.Wait > 0 {
		res.Drain = host.WaitDrained(ctx, rt, c.Backend, c.Server, req.Wait, nil)
	}
	a.after()
	return a.runtimeOutcome(p, "server", req.IfMatch, res, err)
}

// MapEntry implements api.RuntimeChanger: the key in every process and
// in the file.
func (a apiAdapter) MapEntry(ctx context.Context, mapName, key string) (any, error) {
	rt, _, err := a.rt()
	if err != nil {
		return nil, err
	}
	ps, err := rt.Processes(ctx)
	if err != nil {
		return nil, err
	}
	type procEntry struct {
		PID     int32    `json:"pid"`
		Current bool     `json:"current"`
		Values  []string `json:"values"`
		Error   string   `json:"error,omitempty"`
	}
	out := struct {
		Map       string      `json:"map"`
		Key       string      `json:"key"`
		File      []string    `json:"file"`
		Processes []procEntry `json:"processes"`
	}{Map: mapName, Key: key, File: []string{}}
	if b, err := os.ReadFile(mapName); err == nil {
		for _, e := range runtime.ParseMapFile(b) {
			if e.Key == key {
				out.File = append(out.File, e.Value)
			}
		}
	}
	found := len(out.File) > 0
	for _, p := range ps {
		pe := procEntry{PID: p.PID, Current: p.Current, Values: []string{}}
		es, err := rt.Map(ctx, p.PID, mapName)
		switch {
		case err != nil && p.Current && errors.Is(err, runtime.ErrNotFound):
			return nil, fmt.Errorf("%w: %v", api.ErrNotFound, err)
		case err != nil:
			pe.Error = err.Error()
		}
		for _, e := range es {
			if e.Key == key {
				pe.Values = append(pe.Values, e.Value)
				found = true
			}
		}
		out.Processes = append(out.Processes, pe)
	}
	if !found {
		return nil, fmt.Errorf("%w: map %s has no key %s", api.ErrNotFound, mapName, key)
	}
	return out, nil
}

// SetMapEntry implements api.RuntimeChanger: PUT adds the key, or sets
// it when the current worker has it; DELETE deletes it.
func (a apiAdapter) SetMapEntry(ctx context.Context, req api.MapRequest) (api.RuntimeOutcome, error) {
	rt, p, err := a.rt()
	if err != nil {
		return api.RuntimeOutcome{}, err
	}
	c := runtime.MapChange{Op: runtime.MapDel, Map: req.Map, Key: req.Key}
	if !req.Delete {
		c.Op, c.Value = runtime.MapAdd, req.Value
		if ps, err := rt.Processes(ctx); err == nil {
			if es, err := rt.Map(ctx, ps[0].PID, req.Map); err == nil {
				for _, e := range es {
					if e.Key == req.Key {
						c.Op = runtime.MapSet
					}
				}
			}
		}
	}
	if err := c.Validate(); err != nil {
		return api.RuntimeOutcome{}, &api.ValidationError{Reason: err.Error()}
	}
	res, err := host.ApplyRuntime(ctx, p.rel, rt, reload.Options{Who: apiWho, Reason: "api"}, req.IfMatch,
		func(rt *runtime.Runtime, rep *runtime.Report) reload.RuntimeChange { return host.MapChange(rt, c, rep) })
	a.after()
	return a.runtimeOutcome(p, "map", req.IfMatch, res, err)
}

// runtimeOutcome maps a change's error to the API's: unknown names 404,
// a stale If-Match 412, a refusal an outcome with OK false (409).
func (a apiAdapter) runtimeOutcome(p *pieces, kind, ifMatch string, res host.RuntimeResult, err error) (api.RuntimeOutcome, error) {
	o := api.RuntimeOutcome{Kind: kind, OK: err == nil, Broken: res.Broken, Body: res}
	switch {
	case err == nil:
		return o, nil
	case errors.Is(err, runtime.ErrNotFound):
		return o, fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, runtime.ErrExists):
		return o, &api.ValidationError{Reason: err.Error()}
	case errors.Is(err, reload.ErrStale):
		have, _ := p.rel.Identity()
		return o, &api.PreconditionError{Want: ifMatch, Have: have}
	}
	return o, nil
}
