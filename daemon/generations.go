package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/haguard/haguard/agent/generations"
	"github.com/haguard/haguard/agent/sweep"
	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
)

// genGuard keeps the old worker generations in bounds after every sweep
// (docs/generations.md): it assesses them against haguard.yaml's
// generations block, sets the metrics, and, with generations.enforce,
// escalates the generations over a limit one step per sweep, oldest
// first. Each step is logged, counted and appended to
// state_dir/generations.log. SIGHUP builds a new one (the escalation then
// starts over from the report step).
type genGuard struct {
	cfg     config.Generations
	limits  generations.Limits
	esc     *generations.Escalator // nil: report only
	metrics *api.Metrics
	log     *slog.Logger
	rss     generations.RSSFunc
}

func newGenGuard(h *host.Host, m *api.Metrics, log *slog.Logger) *genGuard {
	cfg := h.Config()
	g := &genGuard{cfg: cfg.Generations, limits: generations.LimitsFrom(cfg.Generations), metrics: m,
		log: log.With("loop", "generations"), rss: generations.ReadRSS}
	if cfg.Generations.Enforce {
		if mc := h.Master(); mc != nil {
			auditPath := filepath.Join(cfg.StateDir, generations.LogFile)
			g.esc = generations.NewEscalator(mc, generations.GraceFrom(cfg.Generations), g.log, func(s generations.Step) {
				m.ObserveEscalation(s.Step)
				if err := generations.AppendLog(auditPath, s); err != nil {
					g.log.Error("escalation step not audited", "err", err)
				}
			})
		} else {
			g.log.Warn("generations.enforce is on but haproxy has no master CLI (-S): old generations are only reported")
		}
	}
	return g
}

// observe assesses one good sweep, escalates when enforcing, and returns
// the assessment for the API.
func (g *genGuard) observe(res sweep.Result) generations.Report {
	rep := generations.Assess(res.Report, g.rss, res.Started, g.limits, g.esc != nil)
	if g.esc != nil && rep.Over > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		g.esc.Escalate(ctx, res.Report.MasterPID, &rep)
		cancel()
	} else if g.esc != nil {
		g.esc.Escalate(context.Background(), res.Report.MasterPID, &rep) // forgets the generations that left
	}
	s := api.GenerationsSample{Draining: rep.Draining, OverLimit: rep.Over}
	for _, x := range rep.Generations {
		if x.State == generations.Current {
			s.Current++
		}
	}
	if o, ok := rep.Oldest(); ok {
		s.OldestAge, s.OldestRSS = o.AgeSeconds, float64(o.RSSBytes)
	}
	g.metrics.ObserveGenerations(s)
	if rep.Over > 0 && g.esc == nil {
		for _, x := range rep.Exceeded() {
			g.log.Warn("old generation over its limits (generations.enforce is off: reported only)",
				"generation", x.Generation, "pids", x.PIDs, "over", x.Over, "age", time.Duration(x.AgeSeconds*float64(time.Second)).Round(time.Second),
				"rss_bytes", x.RSSBytes)
		}
	}
	return rep
}
