package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ServerChange changes one server; zero fields are left as they are.
type ServerChange struct {
	Backend string `json:"backend"`
	Server  string `json:"server"`
	// State is ready, drain or maint ("" unchanged).
	State string `json:"state,omitempty"`
	// Weight, when set, is the new weight (0-256).
	Weight *int `json:"weight,omitempty"`
	// Addr is the new IP address ("" unchanged); Port the new port (0
	// unchanged; only with Addr).
	Addr string `json:"addr,omitempty"`
	Port int    `json:"port,omitempty"`
}

// Validate checks the change's fields.
func (c ServerChange) Validate() error {
	var errs []error
	if c.Backend == "" || c.Server == "" || strings.ContainsAny(c.Backend+c.Server, " \t\n;/") {
		errs = append(errs, fmt.Errorf("server %q/%q: want BACKEND/SERVER", c.Backend, c.Server))
	}
	switch c.State {
	case "", StateReady, StateDrain, StateMaint:
	default:
		errs = append(errs, fmt.Errorf("state %q: want ready, drain or maint", c.State))
	}
	if c.Weight != nil && (*c.Weight < 0 || *c.Weight > 256) {
		errs = append(errs, fmt.Errorf("weight %d: want 0 to 256", *c.Weight))
	}
	if c.Addr != "" && net.ParseIP(c.Addr) == nil {
		errs = append(errs, fmt.Errorf("addr %q: want an IP address", c.Addr))
	}
	if c.Port < 0 || c.Port > 65535 || c.Port != 0 && c.Addr == "" {
		errs = append(errs, fmt.Errorf("port %d: want 1-65535, with an address", c.Port))
	}
	if c.State == "" && c.Weight == nil && c.Addr == "" {
		errs = append(errs, errors.New("nothing to change: give a state, a weight or an address"))
	}
	return errors.Join(errs...)
}

// String is the change as the report says it.
func (c ServerChange) String() string {
	var parts []string
	if c.State != "" {
		parts = append(parts, "state "+c.State)
	}
	if c.Weight != nil {
		parts = append(parts, "weight "+strconv.Itoa(*c.Weight))
	}
	if c.Addr != "" {
		a := "addr " + c.Addr
		if c.Port != 0 {
			a += " port " + strconv.Itoa(c.Port)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, ", ")
}

// Holds says whether s holds the change.
func (c ServerChange) Holds(s Server) bool {
	return (c.State == "" || s.State == c.State) && (c.Weight == nil || s.Weight == *c.Weight) &&
		(c.Addr == "" || s.Addr == c.Addr) && (c.Port == 0 || s.Port == c.Port)
}

// SetServer applies c to every live process.
func (r *Runtime) SetServer(ctx context.Context, c ServerChange) (Report, error) {
	rep := Report{Kind: "server", Target: c.Backend + "/" + c.Server, Change: c.String()}
	if err := c.Validate(); err != nil {
		return rep, err
	}
	err := r.run(ctx, &rep, serverStep{c})
	return rep, err
}

type serverStep struct{ c ServerChange }

func (s serverStep) name() string { return s.c.Backend + "/" + s.c.Server }

func (s serverStep) read(ctx context.Context, r *Runtime, p Process, res *ProcResult) error {
	sv, err := r.Server(ctx, p.PID, s.c.Backend, s.c.Server)
	if err != nil {
		return err
	}
	res.Before = &sv
	return nil
}

// commands are what sets the server to what c says, from before.
func serverCommands(name string, c ServerChange) []string {
	var cmds []string
	if c.Addr != "" {
		cmd := "set server " + name + " addr " + c.Addr
		if c.Port != 0 {
			cmd += " port " + strconv.Itoa(c.Port)
		}
		cmds = append(cmds, cmd)
	}
	if c.Weight != nil {
		cmds = append(cmds, "set server "+name+" weight "+strconv.Itoa(*c.Weight))
	}
	if c.State != "" {
		cmds = append(cmds, "set server "+name+" state "+c.State)
	}
	return cmds
}

// accepted says whether answer is haproxy's word for success.
func accepted(answer string) bool {
	return answer == "" || strings.Contains(answer, " changed from ") || strings.HasPrefix(answer, "no need to change")
}

func (s serverStep) apply(ctx context.Context, r *Runtime, p Process) (string, error) {
	for i, cmd := range serverCommands(s.name(), s.c) {
		out, err := r.At(ctx, p.PID, cmd)
		if err != nil {
			return "", err
		}
		if !accepted(out) {
			if i > 0 {
				// Part of the change holds: not a clean refusal.
				return "", fmt.Errorf("%s: %s (after the first part of the change was taken)", cmd, out)
			}
			return out, nil
		}
	}
	return "", nil
}

func (s serverStep) check(ctx context.Context, r *Runtime, p Process, res *ProcResult) error {
	sv, err := r.Server(ctx, p.PID, s.c.Backend, s.c.Server)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	res.After = &sv
	if !s.c.Holds(sv) {
		return fmt.Errorf("read back: state %s weight %d addr %s:%d, want %s", sv.State, sv.Weight, sv.Addr, sv.Port, s.c)
	}
	return nil
}

func (s serverStep) revert(ctx context.Context, r *Runtime, p Process, res ProcResult) error {
	if res.Before == nil {
		return nil
	}
	b := *res.Before
	back := ServerChange{Backend: s.c.Backend, Server: s.c.Server}
	if s.c.State != "" {
		back.State = b.State
	}
	if s.c.Weight != nil {
		w := b.Weight
		back.Weight = &w
	}
	if s.c.Addr != "" {
		back.Addr, back.Port = b.Addr, b.Port
	}
	for _, cmd := range serverCommands(s.name(), back) {
		out, err := r.At(ctx, p.PID, cmd)
		if err != nil {
			return err
		}
		if !accepted(out) {
			return fmt.Errorf("%s: %s", cmd, out)
		}
	}
	sv, err := r.Server(ctx, p.PID, s.c.Backend, s.c.Server)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if !back.Holds(sv) {
		return fmt.Errorf("read back: state %s weight %d addr %s:%d, want %s", sv.State, sv.Weight, sv.Addr, sv.Port, back)
	}
	return nil
}

func (serverStep) refusable(answer string) bool { return answer == refusedStopping }

func (s serverStep) sessions(ctx context.Context, r *Runtime, p Process) int {
	n, err := r.Sessions(ctx, p.PID, s.c.Backend, s.c.Server)
	if err != nil {
		return -1
	}
	return n
}
