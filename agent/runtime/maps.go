package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Map operations.
const (
	MapAdd = "add"
	MapSet = "set"
	MapDel = "del"
)

// MapChange adds, sets or deletes one entry of a map. Map is the map's
// name as haproxy knows it: the file's path in the config.
type MapChange struct {
	Op    string `json:"op"`
	Map   string `json:"map"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// Validate checks the change's fields.
func (c MapChange) Validate() error {
	var errs []error
	switch c.Op {
	case MapAdd, MapSet:
		if c.Value == "" || strings.ContainsAny(c.Value, "\n\r") {
			errs = append(errs, fmt.Errorf("value %q: want one line", c.Value))
		}
	case MapDel:
	default:
		errs = append(errs, fmt.Errorf("op %q: want add, set or del", c.Op))
	}
	if c.Map == "" || strings.ContainsAny(c.Map, " \t\n;") {
		errs = append(errs, fmt.Errorf("map %q: want the map file's path", c.Map))
	}
	if c.Key == "" || strings.ContainsAny(c.Key, " \t\n\r;") {
		errs = append(errs, fmt.Errorf("key %q: want one word", c.Key))
	}
	return errors.Join(errs...)
}

func (c MapChange) String() string {
	if c.Op == MapDel {
		return "del " + c.Key
	}
	return c.Op + " " + c.Key + " " + c.Value
}

// ErrExists: map add of a key the map has (use set).
var ErrExists = errors.New("key exists (use set)")

// SetMap applies c to every live process; old workers must take it too
// (haproxy accepts map changes in a stopping worker).
func (r *Runtime) SetMap(ctx context.Context, c MapChange) (Report, error) {
	rep := Report{Kind: "map", Target: c.Map + " " + c.Key, Change: c.String()}
	if err := c.Validate(); err != nil {
		return rep, err
	}
	err := r.run(ctx, &rep, mapStep{c})
	return rep, err
}

type mapStep struct{ c MapChange }

func (s mapStep) entry(ctx context.Context, r *Runtime, pid int32) (*Entry, error) {
	es, err := r.Map(ctx, pid, s.c.Map)
	if err != nil {
		return nil, err
	}
	var found *Entry
	for _, e := range es {
		if e.Key == s.c.Key {
			if found != nil {
				return nil, fmt.Errorf("map %s holds key %s more than once", s.c.Map, s.c.Key)
			}
			found = &e
		}
	}
	return found, nil
}

func (s mapStep) read(ctx context.Context, r *Runtime, p Process, res *ProcResult) error {
	e, err := s.entry(ctx, r, p.PID)
	if err != nil {
		return err
	}
	if p.Current {
		switch {
		case s.c.Op == MapAdd && e != nil:
			return fmt.Errorf("map %s key %s: %w", s.c.Map, s.c.Key, ErrExists)
		case s.c.Op != MapAdd && e == nil:
			return fmt.Errorf("map %s key %s: %w", s.c.Map, s.c.Key, ErrNotFound)
		}
	}
	res.EntryBefore = e
	return nil
}

// mapCommand sets key to e in a process whose entry is now cur.
func mapCommand(name, key string, cur, e *Entry) string {
	switch {
	case e == nil && cur == nil:
		return ""
	case e == nil:
		return "del map " + name + " " + key
	case cur == nil:
		return "add map " + name + " " + key + " " + e.Value
	}
	return "set map " + name + " " + key + " " + e.Value
}

func (s mapStep) want() *Entry {
	if s.c.Op == MapDel {
		return nil
	}
	return &Entry{Key: s.c.Key, Value: s.c.Value}
}

func (s mapStep) apply(ctx context.Context, r *Runtime, p Process) (string, error) {
	// An old worker may lack or hold the entry whatever the current one
	// does: it is set to the wanted entry from what it has.
	cur, err := s.entry(ctx, r, p.PID)
	if err != nil {
		return "", err
	}
	cmd := mapCommand(s.c.Map, s.c.Key, cur, s.want())
	if cmd == "" {
		return "", nil
	}
	return r.At(ctx, p.PID, cmd)
}

func (s mapStep) check(ctx context.Context, r *Runtime, p Process, res *ProcResult) error {
	e, err := s.entry(ctx, r, p.PID)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	res.EntryAfter = e
	if w := s.want(); (e == nil) != (w == nil) || e != nil && e.Value != w.Value {
		return fmt.Errorf("read back: map %s key %s is %s, want %s", s.c.Map, s.c.Key, entryText(e), entryText(w))
	}
	return nil
}

func entryText(e *Entry) string {
	if e == nil {
		return "absent"
	}
	return fmt.Sprintf("%q", e.Value)
}

func (s mapStep) revert(ctx context.Context, r *Runtime, p Process, res ProcResult) error {
	cur, err := s.entry(ctx, r, p.PID)
	if err != nil {
		return err
	}
	if cmd := mapCommand(s.c.Map, s.c.Key, cur, res.EntryBefore); cmd != "" {
		if out, err := r.At(ctx, p.PID, cmd); err != nil || out != "" {
			return fmt.Errorf("%s: %q %v", cmd, out, err)
		}
	}
	return nil
}

func (mapStep) refusable(string) bool { return false }

func (mapStep) sessions(context.Context, *Runtime, Process) int { return 0 }
