package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/validate"
)

// Targets picks what to probe: haguard.yaml's probe.targets, or else every
// bind of the haproxy config vc (the config that runs, as parsed once by
// the check). Kinds left empty in haguard.yaml are inferred from the
// section that binds the address, or else from its port; every target gets
// probe.mysql's credentials. vc may be nil when probe.targets is set and
// names every kind.
func Targets(pc config.Probe, vc *validate.Config) ([]Target, error) {
	var ts []Target
	if len(pc.Targets) > 0 {
		ts = Configured(pc.Targets, vc)
	} else if vc != nil {
		ts = InferTargets(Listeners(vc), "")
	}
	user, pass, err := Credentials(pc.MySQL)
	if err != nil {
		return nil, err
	}
	for i := range ts {
		ts[i].User, ts[i].Password = user, pass
	}
	return ts, nil
}

// Selection is how the command line picks targets.
type Selection struct {
	// Addresses are --target addresses; their kinds come from the config
	// section that binds them, else from the port.
	Addresses []string
	// Files are -f files; empty means haproxy.configs.
	Files []string
	// Kind and Over are --kind and --over: with a kind given (and, for
	// idle-hold, a protocol) nothing needs inferring.
	Kind, Over string
}

// Select picks the targets: sel.Addresses, else the binds of sel.Files,
// else probe.targets, else the binds of configs. Credentials are not set.
// It returns the config it parsed (nil when none was needed, or it could
// not be read and was not needed).
func Select(sel Selection, pc config.Probe, configs []string) ([]Target, *validate.Config, error) {
	files := configs
	if len(sel.Files) > 0 {
		files = sel.Files
	}
	switch {
	case len(sel.Addresses) > 0:
		// With --kind given there is nothing to infer, and the parse is
		// most of the command's own run time.
		var vc *validate.Config
		if sel.Kind == "" || (sel.Kind == KindIdleHold && sel.Over == "") {
			vc, _ = validate.Parse(files...)
		}
		known := Known(vc)
		var out []Target
		for _, addr := range sel.Addresses {
			t, ok := known[addr]
			if !ok {
				t = Target{Address: addr, Kind: InferKind(Listener{Binds: []string{addr}})}
			}
			out = append(out, t)
		}
		return out, vc, nil
	case len(sel.Files) == 0 && len(pc.Targets) > 0:
		var vc *validate.Config
		if NeedsConfig(pc) {
			vc, _ = validate.Parse(files...)
		}
		return Configured(pc.Targets, vc), vc, nil
	}
	vc, err := validate.Parse(files...)
	if err != nil {
		return nil, nil, fmt.Errorf("read haproxy config: %w", err)
	}
	return InferTargets(Listeners(vc), ""), vc, nil
}

// NeedsConfig reports whether Targets needs the haproxy config: no
// probe.targets, or one whose kind (or idle-hold protocol) is inferred.
func NeedsConfig(pc config.Probe) bool {
	if len(pc.Targets) == 0 {
		return true
	}
	for _, ct := range pc.Targets {
		if ct.Kind == "" || (ct.Kind == KindIdleHold && ct.Over == "") {
			return true
		}
	}
	return false
}

// Configured turns haguard.yaml's probe.targets into targets. An empty
// kind, and an idle-hold's empty over, are inferred from the section of vc
// that binds the address (vc may be nil), or else from the port.
// Credentials are not set.
func Configured(cts []config.ProbeTarget, vc *validate.Config) []Target {
	known := map[string]string{}
	if vc != nil {
		for _, t := range InferTargets(Listeners(vc), "") {
			known[t.Address] = t.Kind
		}
	}
	var out []Target
	for _, ct := range cts {
		inferred, ok := known[ct.Address]
		if !ok {
			inferred = InferKind(Listener{Binds: []string{ct.Address}})
		}
		t := Target{Address: ct.Address, Kind: ct.Kind, Count: ct.Count, Send: ct.Send, Expect: ct.Expect,
			Path: ct.Path, Host: ct.Host, ExpectStatus: ct.ExpectStatus, ExpectBody: ct.ExpectBody,
			Idle: ct.Idle.D(), Over: ct.Over}
		if t.Kind == "" {
			t.Kind = inferred
		}
		if t.Kind == KindIdleHold && t.Over == "" {
			t.Over = OverFor(inferred)
		}
		out = append(out, t)
	}
	return out
}

// Known returns the targets inferred from vc by address, for giving an
// explicitly named address the kind its section implies.
func Known(vc *validate.Config) map[string]Target {
	known := map[string]Target{}
	if vc == nil {
		return known
	}
	for _, t := range InferTargets(Listeners(vc), "") {
		known[t.Address] = t
	}
	return known
}

// OverFor is the protocol an idle-hold speaks on a target of kind.
func OverFor(kind string) string {
	if kind == KindMySQL {
		return KindMySQL
	}
	return KindTCP
}

// Credentials reads probe.mysql: the user, and the password given inline
// or in password_file (its trailing newline dropped).
func Credentials(a config.DBAuth) (user, password string, err error) {
	user, password = a.User, a.Password
	if a.PasswordFile != "" {
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return "", "", fmt.Errorf("probe.mysql.password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	return user, password, nil
}

// Listeners adapts the config model to Listener: one per frontend or
// listen that HAProxy starts (a disabled one binds nothing), with the
// check options and server ports of every live backend it routes to
// (use_backend and default_backend alike).
func Listeners(vc *validate.Config) []Listener {
	backs := map[*validate.Proxy][]*validate.Proxy{}
	for _, r := range validate.Routes(vc) {
		backs[r.Front] = append(backs[r.Front], r.Back)
	}
	var out []Listener
	for _, fe := range vc.LiveFrontends() {
		l := Listener{Section: fe.Section(), Mode: fe.EffMode().Value}
		for _, b := range fe.Binds {
			l.Binds = append(l.Binds, b.Address)
		}
		for _, be := range backs[fe] {
			if c := be.EffCheck(); c != nil && c.On {
				l.MySQLCheck = l.MySQLCheck || c.Name == "mysql-check"
				l.HTTPCheck = l.HTTPCheck || c.Name == "httpchk"
			}
			for _, s := range be.Servers {
				if n, err := strconv.Atoi(s.Port()); err == nil && !slices.Contains(l.ServerPorts, n) {
					l.ServerPorts = append(l.ServerPorts, n)
				}
			}
		}
		out = append(out, l)
	}
	return out
}

// RunCounted runs the probes with the number of processes LISTENing on
// each target, so that every SO_REUSEPORT listener (ghosts included) gets
// its share of attempts. When every target's attempt count is fixed, the
// count is only reported, and the socket scan runs while the probes do.
func RunCounted(ctx context.Context, targets []Target, opts Options) Report {
	fixed := true
	for _, t := range targets {
		if t.Count == 0 && opts.Count == 0 {
			fixed = false
		}
	}
	if !fixed {
		if socks, err := ListenSockets(ctx); err == nil {
			opts.ListenerCount = ListenerCounter(socks)
		} else if opts.Logger != nil {
			opts.Logger.Debug("cannot count listeners; assuming one per target", "err", err)
		}
		return Run(ctx, targets, opts)
	}
	var socks []Socket
	var err error
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		socks, err = ListenSockets(ctx)
	}()
	rep := Run(ctx, targets, opts)
	<-scanned
	if err != nil {
		if opts.Logger != nil {
			opts.Logger.Debug("cannot count listeners", "err", err)
		}
		return rep
	}
	count := ListenerCounter(socks)
	for i := range rep.Targets {
		rep.Targets[i].Listeners = count(rep.Targets[i].Target)
	}
	return rep
}

// ReadHealth reads `show stat` from the stats socket within 3 s.
func ReadHealth(ctx context.Context, socket string) (Health, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return ReadStats(ctx, socket)
}

// Override is what the command line sets on every target; a nil field was
// not given. Idle is the idle-hold time for targets that have none, and
// for every target when IdleSet.
type Override struct {
	Kind, Over               string
	Idle                     time.Duration
	IdleSet                  bool
	Send, Expect, Path, Body *string
	Linger                   *time.Duration
	ExpectStatus             *int
	User, Password           string
}

// Apply sets o on every target. --kind idle-hold keeps what the target
// spoke as its protocol on the held connection; credentials fill only the
// targets that have none.
func (o Override) Apply(ts []Target) {
	for i := range ts {
		t := &ts[i]
		if o.Kind != "" {
			if o.Kind == KindIdleHold && t.Kind != KindIdleHold {
				t.Over = OverFor(t.Kind)
			}
			t.Kind = o.Kind
		}
		if o.Over != "" {
			t.Over = o.Over
		}
		if t.Kind == KindIdleHold && (t.Idle == 0 || o.IdleSet) {
			t.Idle = o.Idle
		}
		if t.User == "" {
			t.User, t.Password = o.User, o.Password
		}
		setIf(&t.Send, o.Send)
		setIf(&t.Expect, o.Expect)
		setIf(&t.Path, o.Path)
		setIf(&t.ExpectBody, o.Body)
		setIf(&t.Linger, o.Linger)
		setIf(&t.ExpectStatus, o.ExpectStatus)
	}
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// WithHealth runs the probes (RunCounted) and adds the servers' health
// from `show stat` on socket ("" or "none": not read), read before the
// probes and again after them (checks may move meanwhile). With required,
// a socket that cannot be read is an error (the caller named it); else a
// missing socket is skipped and any other failure is reported in
// StatsError.
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
	}
	if statsErr != nil {
		rep.StatsError = statsErr.Error()
	}
	return rep, nil
}
