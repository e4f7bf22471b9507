package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/validate"
	"github.com/haguard/haguard/validate/facts"
)

// CheckOptions are one check's choices; empty fields take haguard.yaml's.
type CheckOptions struct {
	// Files are the -f files (default: what the unit runs). Given
	// explicitly, they are read in haguard's own environment; the unit's
	// config is read in the unit's.
	Files []string
	// HAProxyBin runs `-c` (default: the unit's binary).
	HAProxyBin string
	NoSyntax   bool
	FailOn     validate.Severity
	// FactsMode is none, declared or live (default facts.mode).
	FactsMode string
	// Candidate: the files are a candidate for the unit's config (a
	// reload, an API check). The candidate policy then judges them
	// against the running config, when policy.cli says so or Untrusted.
	Candidate bool
	// Untrusted: a candidate from an API client: the policy always
	// applies, and `haproxy -c` runs confined (security.md).
	Untrusted bool
	// SkipLint silences rules for this run (reload --skip-lint); the
	// findings are kept as suppressed, with that reason.
	SkipLint []string
	// Env overrides the environment the files are read in.
	Env map[string]string
}

// Check lints the files and runs `haproxy -c` on them, the way `haguard
// check`, the reload's check stage and the API all do: the files are
// parsed once (the facts of the chosen mode read that parse), in the
// environment the unit gives haproxy, for the binary the unit runs, with
// haguard.yaml's lint block and check bounds.
func (h *Host) Check(ctx context.Context, o CheckOptions) (validate.Report, error) {
	vo := h.checkOptions(o)
	mode := o.FactsMode
	if mode == "" {
		mode = h.cfg.Facts.Mode
	}
	vo.Gather = func(ctx context.Context, vc *validate.Config) *validate.Facts {
		return facts.Gather(ctx, vc, facts.Options{Mode: mode, Config: h.cfg, Logger: h.log, NetnsPID: h.masterPID(ctx, mode)})
	}
	return validate.Check(ctx, vo)
}

// checkOptions turns o into validate's options over this host.
func (h *Host) checkOptions(o CheckOptions) validate.Options {
	vo := validate.Options{Files: o.Files, HAProxyBin: o.HAProxyBin, NoSyntax: o.NoSyntax, FailOn: o.FailOn,
		Logger: h.log, Targets: h.targets, Lint: h.cfg.Lint, Untrusted: o.Untrusted, Env: o.Env,
		MasterWorker: h.disc.MasterWorker}.WithCheckBounds(h.cfg.HAProxy)
	if len(vo.Files) == 0 {
		vo.Files = h.cfg.HAProxy.Configs
		if vo.Env == nil && h.disc.Env != nil {
			vo.Env = h.disc.Env
		}
	}
	if vo.HAProxyBin == "" {
		vo.HAProxyBin = h.cfg.HAProxy.Binary
	}
	if o.Candidate && vo.Env == nil && h.disc.Env != nil {
		vo.Env = h.disc.Env // a candidate is read as the unit will read it
	}
	for _, r := range o.SkipLint {
		vo.Lint.Ignore = append(vo.Lint.Ignore, config.LintIgnore{Rule: r, Reason: "--skip-lint"})
	}
	if o.Untrusted || o.Candidate && h.cfg.Policy.CLI {
		// The running config decides what stays allowed (a line it
		// already has), read as the policy reads a candidate.
		running, err := validate.ParseWith(validate.ReadOptions{Raw: true}, h.cfg.HAProxy.Configs...)
		if err != nil {
			running = nil // nothing is grandfathered
		}
		vo.Policy = validate.NewPolicy(h.cfg.Policy, h.cfg.HAProxy.Configs, running)
		vo.Policy.Refs.WorkDir = h.disc.WorkDir
	}
	return vo
}

// refsOf are the files cfg makes haproxy read at start (maps, ACL files,
// certificates and their companions, CA and CRL files, Lua, error files,
// the entries of its crt-lists) that exist: members of the config set.
func (h *Host) refsOf(cfg *validate.Config) []string {
	if cfg == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	add := func(r validate.FileRef) {
		if r.Access != validate.AccessRead && r.Access != validate.AccessServe {
			return
		}
		for _, p := range r.Paths() {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	for _, r := range validate.FileRefsWith(cfg, validate.RefOptions{WorkDir: h.disc.WorkDir}) {
		add(r)
		if r.Kind == "crt-list" && r.Path != "" {
			if data, err := os.ReadFile(r.Path); err == nil && len(data) <= 1<<20 {
				for _, e := range validate.CrtListRefs(r, data) {
					add(e)
				}
			}
		}
	}
	return out
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
		u, err := h.sd.State(ctx, h.cfg.Systemd.Unit)
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
