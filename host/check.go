package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"

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
		return facts.Gather(ctx, vc, facts.Options{Mode: o.FactsMode, Config: h.cfg, Logger: h.log, NetnsPID: h.masterPID(ctx, o.FactsMode)})
	}
	return validate.Check(ctx, validate.Options{Files: o.Files, HAProxyBin: o.HAProxyBin, NoSyntax: o.NoSyntax,
		FailOn: o.FailOn, Gather: gather, Logger: h.log})
}

// masterPID is haproxy's master, whose network namespace the kernel
// facts are read in: the unit's MainPID, else the master CLI's master;
// 0 (haguard's own namespace) when the facts are not live or neither
// can say.
func (h *Host) masterPID(ctx context.Context, mode string) int32 {
	if mode != facts.ModeLive {
		return 0
	}
	var errs []error
	if h.sd != nil {
		u, err := h.sd.Unit(ctx, h.cfg.Systemd.Unit)
		if err == nil && u.MainPID != 0 {
			return u.MainPID
		}
		errs = append(errs, cmp.Or(err, fmt.Errorf("%s has no MainPID", h.cfg.Systemd.Unit)))
	}
	sp, err := h.mc.ShowProc(ctx)
	if err == nil && sp.Master.PID != 0 {
		return sp.Master.PID
	}
	errs = append(errs, cmp.Or(err, errors.New("show proc names no master")))
	h.log.Info("kernel facts are read in haguard's own network namespace: haproxy's master is not known", "err", errors.Join(errs...))
	return 0
}
