package host

import (
	"context"

	"github.com/haguard/haguard/validate"
	"github.com/haguard/haguard/validate/facts"
)

// CheckOptions are one check's choices; empty fields take haguard.yaml's.
type CheckOptions struct {
	// Files are the -f files (default haproxy.configs).
	Files []string
	// HAProxyBin runs `-c` (default haproxy.binary).
	HAProxyBin string
	NoSyntax   bool
	FailOn     validate.Severity
	// FactsMode is none, declared or live (default facts.mode).
	FactsMode string
}

// Check lints the files and runs `haproxy -c` on them, the way `haguard
// check` and the reload's check stage both do: the files are parsed once,
// and the facts of the chosen mode are gathered from that parse.
func (h *Host) Check(ctx context.Context, o CheckOptions) (validate.Report, error) {
	if len(o.Files) == 0 {
		o.Files = h.cfg.HAProxy.Configs
	}
	if o.HAProxyBin == "" {
		o.HAProxyBin = h.cfg.HAProxy.Binary
	}
	if o.FactsMode == "" {
		o.FactsMode = h.cfg.Facts.Mode
	}
	gather := func(ctx context.Context, vc *validate.Config) *validate.Facts {
		return facts.Gather(ctx, vc, facts.Options{Mode: o.FactsMode, Config: h.cfg, Logger: h.log})
	}
	return validate.Check(ctx, validate.Options{Files: o.Files, HAProxyBin: o.HAProxyBin, NoSyntax: o.NoSyntax,
		FailOn: o.FailOn, Gather: gather, Logger: h.log})
}
