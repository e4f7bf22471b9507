// Package facts gathers what the haproxy config cannot say, for the lint
// rules that need it: live variables of every MySQL-like backend server,
// kernel sysctls, and the path declared in haguard.yaml. Gathering never
// fails as a whole: a fact that cannot be read is recorded with its error,
// and the rules turn that into a finding.
package facts

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/validate"
)

// Modes of gathering (haguard.yaml facts.mode, check --facts).
const (
	ModeNone     = "none"
	ModeDeclared = "declared"
	ModeLive     = "live"
)

// Options configure Gather.
type Options struct {
	// Mode is none, declared or live.
	Mode string
	// Config is haguard.yaml: DB credentials, declared backends and path.
	Config config.Config
	// ProcSys is where sysctls are read ("/proc/sys" when empty).
	ProcSys string
	// NetnsPID is haproxy's master (systemd's MainPID): the kernel facts
	// are read in its network namespace. 0 reads haguard's own.
	NetnsPID int32
	// Timeout bounds each DB server's connect and queries (3 s when 0).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Gather collects the facts for cfg (the parsed haproxy config) by mode:
// none gives only declared backend facts (config-only rules read them),
// declared adds the haguard.yaml path, live adds the DB variables of
// every MySQL-like backend server and the kernel sysctls.
func Gather(ctx context.Context, cfg *validate.Config, o Options) *validate.Facts {
	gens := o.Config.Generations
	f := &validate.Facts{Backends: o.Config.Facts.Backends, Generations: &gens}
	if o.Mode == ModeNone || o.Mode == "" {
		return f
	}
	f.Path = Declared(o.Config)
	if o.Mode == ModeLive {
		log := o.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		timeout := o.Timeout
		if timeout <= 0 {
			timeout = 3 * time.Second
		}
		f.Kernel = Kernel(o.ProcSys, o.NetnsPID)
		if cfg != nil {
			f.DB = DB(ctx, cfg, o.Config, timeout, log)
		}
	}
	if f.DB == nil {
		// Declared wait_timeouts stand in when the DBs were not asked.
		f.DB = DeclaredDB(o.Config, cfg)
	}
	return f
}

// DeclaredDB turns haguard.yaml facts.backends.*.wait_timeout into DB
// facts for every server of that backend of cfg; nil when none is
// declared (or cfg is nil).
func DeclaredDB(c config.Config, cfg *validate.Config) map[string]map[string]validate.DBServerFacts {
	if cfg == nil {
		return nil
	}
	var out map[string]map[string]validate.DBServerFacts
	for name, bf := range c.Facts.Backends {
		if bf.WaitTimeout == nil || bf.WaitTimeout.IsUnlimited() {
			continue
		}
		p := cfg.Backend(name)
		if p == nil {
			continue
		}
		if out == nil {
			out = map[string]map[string]validate.DBServerFacts{}
		}
		out[name] = map[string]validate.DBServerFacts{}
		secs := strconv.FormatInt(int64(bf.WaitTimeout.D().Seconds()), 10)
		for _, s := range p.Servers {
			out[name][s.Name] = validate.DBServerFacts{Variables: map[string]string{"wait_timeout": secs, "interactive_timeout": secs}}
		}
	}
	return out
}

// Declared returns the haguard.yaml path with every middlebox's idle
// timeout, L7 flag and reset behaviour filled from its kind's documented
// default when not given. It is nil when haguard.yaml declares no path.
func Declared(c config.Config) *config.Path {
	if len(c.Path.Clients) == 0 && len(c.Path.Middleboxes) == 0 {
		return nil
	}
	p := config.Path{Clients: append([]config.Client(nil), c.Path.Clients...)}
	for _, m := range c.Path.Middleboxes {
		def := config.MiddleboxDefaults[m.Kind]
		if m.IdleTimeout == nil && def.Idle > 0 {
			d := config.Duration(def.Idle)
			m.IdleTimeout = &d
		}
		if m.L7 == nil {
			l7 := def.L7
			m.L7 = &l7
		}
		if m.ResetOnTimeout == nil {
			r := def.ResetOnTimeout
			m.ResetOnTimeout = &r
		}
		p.Middleboxes = append(p.Middleboxes, m)
	}
	return &p
}
