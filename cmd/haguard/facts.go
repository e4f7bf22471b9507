package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/validate"
	"github.com/haguard/haguard/validate/facts"
)

// gatherFacts collects the facts for mode (none, declared, live) about the
// config in files. Declared backend wait_timeouts stand in for live ones
// when the DB is not asked.
func gatherFacts(ctx context.Context, cfg config.Config, mode string, files []string, log *slog.Logger) *validate.Facts {
	var vc *validate.Config
	if mode == facts.ModeLive {
		if c, err := validate.Parse(files...); err == nil {
			vc = c
		}
	}
	f := facts.Gather(ctx, vc, facts.Options{Mode: mode, Config: cfg, Logger: log})
	if mode != facts.ModeNone && f.DB == nil {
		f.DB = declaredDB(cfg, files)
	}
	return f
}

// declaredDB turns haguard.yaml facts.backends.*.wait_timeout into DB
// facts for every server of that backend; nil when none is declared.
func declaredDB(cfg config.Config, files []string) map[string]map[string]validate.DBServerFacts {
	var out map[string]map[string]validate.DBServerFacts
	var vc *validate.Config
	for name, bf := range cfg.Facts.Backends {
		if bf.WaitTimeout == nil || bf.WaitTimeout.IsUnlimited() {
			continue
		}
		if vc == nil {
			c, err := validate.Parse(files...)
			if err != nil {
				return nil
			}
			vc = c
		}
		p := vc.Backend(name)
		if p == nil {
			continue
		}
		if out == nil {
			out = map[string]map[string]validate.DBServerFacts{}
		}
		out[name] = map[string]validate.DBServerFacts{}
		secs := fmt.Sprintf("%d", int64(bf.WaitTimeout.D().Seconds()))
		for _, s := range p.Servers {
			out[name][s.Name] = validate.DBServerFacts{Variables: map[string]string{"wait_timeout": secs, "interactive_timeout": secs}}
		}
	}
	return out
}
