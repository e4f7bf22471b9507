package host

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/haguard/haguard/agent/probe"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/validate"
)

// ProbeTargets are the targets of haguard.yaml's probe block for vc, the
// config that runs; nil reads haproxy.configs from disk, only when the
// targets need it.
func (h *Host) ProbeTargets(vc *validate.Config) ([]probe.Target, error) {
	if vc == nil && probe.NeedsConfig(h.cfg.Probe) {
		c, err := validate.Parse(h.cfg.HAProxy.Configs...)
		if err != nil {
			return nil, fmt.Errorf("read listeners: %w", err)
		}
		vc = c
	}
	return probe.Targets(h.cfg.Probe, vc)
}

// ProbeOptions are haguard.yaml's probe settings.
func (h *Host) ProbeOptions() probe.Options {
	return probe.Options{Count: h.cfg.Probe.Count, Concurrency: h.cfg.Probe.Concurrency,
		Timeout: h.cfg.Probe.Timeout.D(), Logger: h.log}
}

// ProbeForReload probes vc's targets as the reload's probe stage does,
// and reads the servers' health from the stats socket.
func (h *Host) ProbeForReload(ctx context.Context, vc *validate.Config, base reload.ProbeBaseline) (reload.ProbeReport, error) {
	if vc == nil {
		// A rollback restored a config this run did not parse.
		c, err := validate.Parse(h.cfg.HAProxy.Configs...)
		if err != nil {
			return reload.ProbeReport{}, fmt.Errorf("read listeners: %w", err)
		}
		vc = c
	}
	begin := time.Now()
	targets, err := h.ProbeTargets(vc)
	if err != nil {
		return reload.ProbeReport{}, err
	}
	if b, ok := base.(probe.Baseline); ok {
		b.Apply(targets)
	}
	opts := h.ProbeOptions()
	run := probe.RunCounted
	if probe.CountsFixed(targets, opts) {
		// The listener count would only be reported, and this report has
		// no place for it: no walk of every process's fds.
		run = probe.Run
	}
	rep := run(ctx, targets, opts)
	out := reload.ProbeReport{Attempts: []reload.ProbeAttempt{}}
	for _, t := range rep.Targets {
		for _, a := range t.Attempts {
			out.Total++
			if a.OK {
				out.OK++
			} else {
				out.Failed++
			}
			out.Attempts = append(out.Attempts, reload.ProbeAttempt{Target: a.Target, Kind: a.Kind, OK: a.OK, Reason: a.Reason,
				Error: a.Error, LatencyMS: a.LatencyMS})
		}
	}
	if sock := h.StatsSocket(vc); sock != "" {
		out.Servers, _ = h.firstChecks(ctx, sock, begin.Add(h.cfg.Reload.BackendWait.D()))
	}
	return out, nil
}

// firstChecks reads the servers' health from sock once no server's check
// is still INI (the new generation's first checks done), or as it is at
// deadline. A socket that cannot be read gives no servers.
func (h *Host) firstChecks(ctx context.Context, sock string, deadline time.Time) ([]reload.ServerHealth, error) {
	for {
		servers, err := readServers(ctx, sock)
		if err != nil || !slices.ContainsFunc(servers, func(s reload.ServerHealth) bool { return s.Check == "INI" }) ||
			time.Now().After(deadline) {
			return servers, err
		}
		select {
		case <-ctx.Done():
			return servers, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Health reads the servers' health now, from the stats socket of
// haguard.yaml or else of the config on disk (nil when there is none).
func (h *Host) Health(ctx context.Context) ([]reload.ServerHealth, error) {
	sock := h.StatsSocket(nil)
	if sock == "" {
		return nil, nil
	}
	return readServers(ctx, sock)
}

func readServers(ctx context.Context, sock string) ([]reload.ServerHealth, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	hl, err := probe.ReadStats(ctx, sock)
	if err != nil {
		return nil, err
	}
	out := make([]reload.ServerHealth, 0, len(hl.Servers))
	for _, s := range hl.Servers {
		out = append(out, reload.ServerHealth{Backend: s.Backend, Server: s.Server, Status: s.Status, Check: s.CheckStatus, Code: s.CheckCode})
	}
	return out, nil
}

// LearnListeners probes the targets of the config on disk (what runs,
// unless it was edited in place: then the new binds are not learned)
// briefly, before a reload: see probe.Learn.
func (h *Host) LearnListeners(ctx context.Context) (reload.ProbeBaseline, error) {
	targets, err := h.ProbeTargets(nil)
	if err != nil {
		return nil, err
	}
	return probe.Learn(ctx, targets, h.ProbeOptions()), nil
}

// StatsSocket is the stats socket to read server health from:
// haproxy.stats_socket in haguard.yaml, else the config's own `stats
// socket`; vc nil reads the config on disk ("" when it cannot be read).
func (h *Host) StatsSocket(vc *validate.Config) string {
	if s := h.cfg.HAProxy.StatsSocket; s != "" {
		return s
	}
	if vc == nil {
		c, err := validate.Parse(h.cfg.HAProxy.Configs...)
		if err != nil {
			return ""
		}
		vc = c
	}
	return vc.StatsSocket()
}
