package main

import (
	"context"
	"log/slog"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/validate"
)

// factsRegistry is every rule haguard implements, the fact rules included.
func factsRegistry() *validate.Registry {
	return validate.DefaultRegistry()
}

// gatherFacts collects the facts for mode (none, declared, live).
func gatherFacts(ctx context.Context, cfg config.Config, mode string, files []string, log *slog.Logger) *validate.Facts {
	f := &validate.Facts{Backends: cfg.Facts.Backends}
	if mode == "none" {
		return f
	}
	if len(cfg.Path.Middleboxes) > 0 || len(cfg.Path.Clients) > 0 {
		p := cfg.Path
		f.Path = &p
	}
	return f
}
