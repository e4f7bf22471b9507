package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/agent/probe"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/validate"
)

// probeTargets picks the targets: --target, else -f, else haguard.yaml's
// probe.targets, else the binds of haproxy.configs. The flags that shape
// an attempt apply to every target.
func probeTargets(cmd *cobra.Command, f probeFlags, cfg config.Config) ([]probe.Target, error) {
	files := cfg.HAProxy.Configs
	explicitFiles := len(f.haproxyCfgs) > 0
	if explicitFiles {
		files = f.haproxyCfgs
	}
	var targets []probe.Target
	switch {
	case len(f.targets) > 0:
		// The kind of an explicit target comes from the config when it
		// names the address, else from its port.
		known := map[string]probe.Target{}
		needKind := f.kind == "" || (f.kind == probe.KindIdleHold && f.over == "")
		if vc, err := parseIf(needKind, files); err == nil {
			for _, t := range probe.InferTargets(ProbeListeners(vc), "") {
				known[t.Address] = t
			}
		}
		for _, addr := range f.targets {
			t, ok := known[addr]
			if !ok {
				t = probe.Target{Address: addr, Kind: probe.InferKind(probe.Listener{Binds: []string{addr}})}
			}
			targets = append(targets, t)
		}
	case !explicitFiles && len(cfg.Probe.Targets) > 0:
		targets = ConfiguredTargets(cfg)
	default:
		vc, err := validate.Parse(files...)
		if err != nil {
			return nil, usagef(fmt.Errorf("read haproxy config: %w", err))
		}
		targets = probe.InferTargets(ProbeListeners(vc), "")
	}
	user, password, err := probeCredentials(f, cfg)
	if err != nil {
		return nil, usagef(err)
	}
	fl := cmd.Flags()
	for i := range targets {
		t := &targets[i]
		if f.kind != "" {
			if f.kind == probe.KindIdleHold && t.Kind != probe.KindIdleHold {
				t.Over = overFor(t.Kind)
			}
			t.Kind = f.kind
		}
		if f.over != "" {
			t.Over = f.over
		}
		if t.Kind == probe.KindIdleHold && (t.Idle == 0 || fl.Changed("idle")) {
			t.Idle = f.idle
		}
		if t.User == "" {
			t.User, t.Password = user, password
		}
		setIf(fl.Changed("send"), &t.Send, f.send)
		setIf(fl.Changed("expect"), &t.Expect, f.expect)
		if fl.Changed("linger") {
			t.Linger = f.linger
		}
		setIf(fl.Changed("path"), &t.Path, f.path)
		setIf(fl.Changed("expect-body"), &t.ExpectBody, f.expectBody)
		if fl.Changed("expect-status") {
			t.ExpectStatus = f.expectStatus
		}
	}
	return targets, nil
}

// parseIf reads the haproxy config only when the answer is needed: with
// --kind given there is nothing to infer, and the parse is most of the
// command's own run time.
func parseIf(need bool, files []string) (*validate.Config, error) {
	if !need {
		return nil, errors.New("not needed")
	}
	return validate.Parse(files...)
}

func setIf(changed bool, dst *string, v string) {
	if changed {
		*dst = v
	}
}

// overFor is the protocol an idle-hold speaks on a target of kind.
func overFor(kind string) string {
	if kind == probe.KindMySQL {
		return probe.KindMySQL
	}
	return probe.KindTCP
}

func probeCredentials(f probeFlags, cfg config.Config) (user, password string, err error) {
	user, password = cfg.Probe.MySQL.User, cfg.Probe.MySQL.Password
	file := cfg.Probe.MySQL.PasswordFile
	if f.user != "" {
		user, password, file = f.user, "", ""
	}
	if f.passwordFile != "" {
		file = f.passwordFile
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", "", fmt.Errorf("mysql password: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	return user, password, nil
}

// ConfiguredTargets turns haguard.yaml's probe.targets into probe targets.
// An empty kind, and an idle-hold's empty over, are inferred from the
// section of haproxy.configs that binds the address, or else from the
// port (the config is read only when something needs inferring).
// Credentials are added by the caller (probe.mysql).
func ConfiguredTargets(cfg config.Config) []probe.Target {
	var vc *validate.Config
	for _, ct := range cfg.Probe.Targets {
		if ct.Kind == "" || (ct.Kind == probe.KindIdleHold && ct.Over == "") {
			vc, _ = validate.Parse(cfg.HAProxy.Configs...)
			break
		}
	}
	return configuredTargets(cfg, vc)
}

// configuredTargets is ConfiguredTargets over a parsed config (vc may be nil).
func configuredTargets(cfg config.Config, vc *validate.Config) []probe.Target {
	known := map[string]string{}
	if vc != nil {
		for _, t := range probe.InferTargets(ProbeListeners(vc), "") {
			known[t.Address] = t.Kind
		}
	}
	var out []probe.Target
	for _, ct := range cfg.Probe.Targets {
		inferred, ok := known[ct.Address]
		if !ok {
			inferred = probe.InferKind(probe.Listener{Binds: []string{ct.Address}})
		}
		t := probe.Target{Address: ct.Address, Kind: ct.Kind, Count: ct.Count, Send: ct.Send, Expect: ct.Expect,
			Path: ct.Path, Host: ct.Host, ExpectStatus: ct.ExpectStatus, ExpectBody: ct.ExpectBody,
			Idle: ct.Idle.D(), Over: ct.Over}
		if t.Kind == "" {
			t.Kind = inferred
		}
		if t.Kind == probe.KindIdleHold && t.Over == "" {
			t.Over = overFor(inferred)
		}
		out = append(out, t)
	}
	return out
}

// ProbeListeners adapts the config model to probe's Listener: one per
// frontend or listen that HAProxy starts (a disabled one binds nothing),
// with the check options and server ports of every live backend it routes
// to (use_backend and default_backend alike).
func ProbeListeners(vc *validate.Config) []probe.Listener {
	backs := map[*validate.Proxy][]*validate.Proxy{}
	for _, r := range validate.Routes(vc) {
		backs[r.Front] = append(backs[r.Front], r.Back)
	}
	var out []probe.Listener
	for _, fe := range vc.LiveFrontends() {
		l := probe.Listener{Section: fe.Section(), Mode: fe.EffMode().Value}
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
