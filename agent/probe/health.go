package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// NoServerUp is a backend that a probed listener routes to and that has
// no server UP: haproxy has nowhere to send the listener's traffic, even
// if connections to the listener succeed.
type NoServerUp struct {
	Backend string `json:"backend"`
	// Status is the backend's own line in `show stat` (DOWN when haproxy
	// has no usable server either).
	Status string `json:"status,omitempty"`
	// Servers are its servers as "name STATUS CHECK" ("s1 DOWN L4CON").
	Servers []string `json:"servers"`
	// Targets are the probed addresses whose listener routes there.
	Targets []string `json:"targets"`
}

// Usable reports whether haproxy sends new connections to the server:
// UP (also "UP 1/3", going down), or "no check" (haproxy assumes it is
// up). DRAIN and NOLB take no new traffic; DOWN and MAINT none at all.
func (s ServerStatus) Usable() bool {
	return strings.HasPrefix(s.Status, "UP") || s.Status == "no check"
}

// NoServerUpIn lists, in name order, the backends of targets (Backends)
// that have servers in h but none Usable, or whose own line says DOWN. A
// backend with no server lines (one that only redirects or answers
// itself) is not listed.
func NoServerUpIn(targets []Target, h Health) []NoServerUp {
	byBackend := map[string][]ServerStatus{}
	for _, s := range h.Servers {
		byBackend[s.Backend] = append(byBackend[s.Backend], s)
	}
	beDown := map[string]string{}
	for _, b := range h.BackendsDown {
		beDown[b.Backend] = b.Status
	}
	found := map[string]*NoServerUp{}
	for _, t := range targets {
		for _, be := range t.Backends {
			servers := byBackend[be]
			if len(servers) == 0 || (slices.ContainsFunc(servers, ServerStatus.Usable) && !strings.HasPrefix(beDown[be], "DOWN")) {
				continue
			}
			n, ok := found[be]
			if !ok {
				n = &NoServerUp{Backend: be, Status: beDown[be], Servers: []string{}, Targets: []string{}}
				for _, s := range servers {
					n.Servers = append(n.Servers, strings.TrimSpace(fmt.Sprintf("%s %s %s", s.Server, s.Status, checkText(s))))
				}
				found[be] = n
			}
			if !slices.Contains(n.Targets, t.Address) {
				n.Targets = append(n.Targets, t.Address)
			}
		}
	}
	out := []NoServerUp{}
	for _, n := range found {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b NoServerUp) int { return strings.Compare(a.Backend, b.Backend) })
	return out
}

// checkText is the last check as `show stat` gives it: "L7STS 503".
func checkText(s ServerStatus) string {
	if s.CheckCode != 0 {
		return fmt.Sprintf("%s %d", s.CheckStatus, s.CheckCode)
	}
	return s.CheckStatus
}

// ReadHealth reads `show stat` from the stats socket within 3 s.
func ReadHealth(ctx context.Context, socket string) (Health, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return ReadStats(ctx, socket)
}

// WithHealth runs the probes (RunCounted) and adds the servers' health
// from `show stat` on socket ("" or "none": not read), read before the
// probes and again after them (checks may move meanwhile; the later read
// is kept). A backend that a probed listener routes to and that has no
// server UP fails the report (NoServerUp). With required, a socket that
// cannot be read is an error (the caller named it); else a missing
// socket is skipped and any other failure is reported in StatsError.
func WithHealth(ctx context.Context, targets []Target, opts Options, socket string, required bool) (Report, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var health *Health
	var statsErr error
	if socket != "" && socket != "none" {
		h, err := ReadHealth(ctx, socket)
		switch {
		case err == nil:
			health = &h
		case required:
			return Report{}, err
		case errors.Is(err, os.ErrNotExist):
			opts.Logger.Debug("no stats socket", "socket", socket)
		default:
			statsErr = err
			opts.Logger.Warn("cannot read server health", "err", err)
		}
	}
	rep := RunCounted(ctx, targets, opts)
	if health != nil {
		if h, err := ReadHealth(ctx, socket); err == nil {
			health = &h
		}
		rep.Servers, rep.BackendsDown = health.Servers, health.BackendsDown
		rep.NoServerUp = NoServerUpIn(targets, *health)
		if len(rep.NoServerUp) > 0 {
			rep.OK = false
		}
	}
	if statsErr != nil {
		rep.StatsError = statsErr.Error()
	}
	return rep, nil
}
