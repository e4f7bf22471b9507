package probe

import (
	"fmt"
	"os"
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
	// Routes asks for the config even when nothing needs inferring: it
	// says which backends each address routes to (for the backend
	// verdict), how long haproxy takes to give up on a server (for the
	// linger) and which error pages are its own.
	Routes bool
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
		// With --kind given there may be nothing to infer, and the parse
		// is most of the command's own run time.
		var vc *validate.Config
		if sel.Kind == "" || (sel.Kind == KindIdleHold && sel.Over == "") || sel.Routes {
			vc, _ = validate.Parse(files...)
		}
		known := Known(vc)
		var out []Target
		for _, addr := range sel.Addresses {
			t, ok := known[addr]
			if !ok {
				t = Unknown(addr)
			}
			out = append(out, t)
		}
		return out, vc, nil
	case len(sel.Files) == 0 && len(pc.Targets) > 0:
		var vc *validate.Config
		if NeedsConfig(pc) || sel.Routes {
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
// probe.targets, or one whose kind (or idle-hold protocol) is inferred,
// or a tcp target without expect (its linger follows haproxy's give-up
// time) or an http one (which pages are haproxy's own).
func NeedsConfig(pc config.Probe) bool {
	if len(pc.Targets) == 0 {
		return true
	}
	for _, ct := range pc.Targets {
		switch {
		case ct.Kind == "", ct.Kind == KindIdleHold && ct.Over == "",
			ct.Kind == KindTCP && ct.Expect == "", ct.Kind == KindHTTP:
			return true
		}
	}
	return false
}

// Unknown is the target for an address the haproxy config does not bind:
// its kind from the port, haproxy's default give-up time.
func Unknown(addr string) Target {
	return Target{Address: addr, Kind: InferKind(Listener{Binds: []string{addr}}), GiveUp: DefaultGiveUp}
}

// Configured turns haguard.yaml's probe.targets into targets. An empty
// kind, and an idle-hold's empty over, are inferred from the section of vc
// that binds the address (vc may be nil), or else from the port; the
// section also gives the backends, the give-up time and the error pages
// (else haproxy's defaults). Credentials are not set.
func Configured(cts []config.ProbeTarget, vc *validate.Config) []Target {
	known := Known(vc)
	var out []Target
	for _, ct := range cts {
		k, ok := known[ct.Address]
		if !ok {
			k = Unknown(ct.Address)
		}
		inferred := k.Kind
		t := Target{Address: ct.Address, Kind: ct.Kind, Count: ct.Count, Send: ct.Send, Expect: ct.Expect,
			Path: ct.Path, Host: ct.Host, ExpectStatus: ct.ExpectStatus, ExpectBody: ct.ExpectBody,
			Idle: ct.Idle.D(), Over: ct.Over, GiveUp: k.GiveUp, Backends: k.Backends, ErrorPages: k.ErrorPages}
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
// targets that have none; a Linger of 0 turns the linger off (NoLinger).
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
		if o.Linger != nil {
			t.Linger = *o.Linger
			if t.Linger == 0 {
				t.Linger = NoLinger
			}
		}
		setIf(&t.ExpectStatus, o.ExpectStatus)
	}
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}
