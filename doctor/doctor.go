// Package doctor checks that haguard is set up to do its job on this host
// and says, for each problem, the line that fixes it (`haguard doctor`):
// haguard.yaml against what the unit runs, the master and stats sockets,
// whether each listener's probe can tell a dead server, the state dir and
// the API token file, the haproxy version, and whether a plain `systemctl
// reload` goes through haguard.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/systemd"
	"github.com/haguard/haguard/validate"
)

// Status is a check's verdict. Only a problem fails doctor (exit 1); a
// note is something worth knowing, or a suggestion.
type Status string

// Statuses.
const (
	OK      Status = "ok"
	Problem Status = "problem"
	Note    Status = "note"
)

// Check is one thing doctor looked at.
type Check struct {
	// Name: unit, haguard.yaml, config, master_socket, stats_socket,
	// probe, state_dir, token_file, haproxy, dropin.
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix is the line that fixes a problem (or acts on a note).
	Fix string `json:"fix,omitempty"`
}

// Report is `haguard doctor --format json`.
type Report struct {
	Unit     string  `json:"unit"`
	OK       bool    `json:"ok"`
	Problems int     `json:"problems"`
	Checks   []Check `json:"checks"`
	// DropIn is whether a plain `systemctl reload` goes through haguard.
	DropIn bool `json:"dropin"`
}

// Input is what the command line gathered.
type Input struct {
	// Config is haguard.yaml as loaded, before it met the unit.
	Config config.Config
	// Host is the host as opened; nil when it could not be. HostErr is
	// why, or (with Host set) haguard.yaml's conflicts with the unit.
	Host    *host.Host
	HostErr error
	// Unit is what systemd says about the unit; nil when it could not be
	// asked (UnitErr says why).
	Unit    *systemd.Unit
	UnitErr error
}

// Run makes every check. It changes nothing.
func Run(ctx context.Context, in Input) Report {
	r := Report{Unit: in.Config.Systemd.Unit}
	add := func(cs ...Check) { r.Checks = append(r.Checks, cs...) }
	add(unitCheck(in))
	add(yamlChecks(in)...)
	var vc *validate.Config
	if in.Host != nil {
		c, cfgCheck := configCheck(in.Host)
		vc = c
		add(cfgCheck)
		add(masterCheck(ctx, in.Host))
		add(statsCheck(ctx, in.Host, vc))
		add(probeChecks(in.Host, vc)...)
		add(versionChecks(ctx, in.Host, in.Unit)...)
	}
	add(stateDirCheck(in.Config.StateDir))
	add(tokenCheck(in.Config.API.TokenFile))
	dc, on := dropInCheck(in.Unit)
	add(dc)
	r.DropIn = on
	for _, c := range r.Checks {
		if c.Status == Problem {
			r.Problems++
		}
	}
	r.OK = r.Problems == 0
	return r
}

func unitCheck(in Input) Check {
	name := in.Config.Systemd.Unit
	c := Check{Name: "unit"}
	switch u := in.Unit; {
	case u == nil:
		c.Status, c.Message = Problem, fmt.Sprintf("systemd cannot be asked about %s: %v", name, in.UnitErr)
		c.Fix = "run haguard as root on the host that runs haproxy (or set systemd.bus_address in haguard.yaml)"
	case u.LoadState == "not-found":
		c.Status, c.Message = Problem, fmt.Sprintf("systemd knows no unit %s", name)
		c.Fix = "apt-get install haproxy, or name the unit that runs haproxy in haguard.yaml (systemd.unit)"
	case u.ActiveState != "active":
		c.Status, c.Message = Problem, fmt.Sprintf("%s is %s (%s): haguard reloads a running haproxy", name, u.ActiveState, u.SubState)
		c.Fix = "systemctl start " + name + "; journalctl -u " + name + " says why it stopped"
	default:
		c.Status, c.Message = OK, fmt.Sprintf("%s is active (%s), master pid %d", name, u.SubState, u.MainPID)
	}
	return c
}

// yamlChecks: haguard.yaml against what the unit runs (host.Discover,
// Reconcile), and what discovery could not read.
func yamlChecks(in Input) []Check {
	var out []Check
	var conflicts []*host.ConflictError
	for _, e := range unwrapAll(in.HostErr) {
		var ce *host.ConflictError
		if errors.As(e, &ce) {
			conflicts = append(conflicts, ce)
		}
	}
	for _, ce := range conflicts {
		out = append(out, Check{Name: "haguard.yaml", Status: Problem,
			Message: fmt.Sprintf("%s is %s, but the unit runs with %s (from the %s)", ce.Key, ce.YAML, ce.Unit, ce.From),
			Fix:     fmt.Sprintf("in haguard.yaml, set %s to %s or drop the key (haguard reads it from the unit)", ce.Key, ce.Unit)})
	}
	switch {
	case in.Host == nil:
		out = append(out, Check{Name: "haguard.yaml", Status: Problem, Message: fmt.Sprintf("cannot open the host: %v", in.HostErr),
			Fix: "fix what the message names, then run haguard doctor again"})
		return out
	case len(conflicts) == 0:
		d := in.Host.Discovery()
		out = append(out, Check{Name: "haguard.yaml", Status: OK,
			Message: fmt.Sprintf("agrees with the unit: configs %s (from the %s), binary %s", strings.Join(d.Configs, " "), d.ConfigsFrom, d.Binary.Value)})
	}
	for _, n := range in.Host.Discovery().Notes {
		out = append(out, Check{Name: "haguard.yaml", Status: Note, Message: n})
	}
	return out
}

// unwrapAll flattens errors.Join trees.
func unwrapAll(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unwrapAll(e)...)
		}
		return out
	}
	return []error{err}
}

func configCheck(h *host.Host) (*validate.Config, Check) {
	files := h.Config().HAProxy.Configs
	d := h.Discovery()
	vc, err := validate.ParseWith(validate.ReadOptions{Env: d.Env, MasterWorker: d.MasterWorker}, files...)
	if err != nil {
		return nil, Check{Name: "config", Status: Problem, Message: fmt.Sprintf("cannot read the config haproxy runs: %v", err),
			Fix: "make " + strings.Join(files, " ") + " readable by root (haguard check says more)"}
	}
	return vc, Check{Name: "config", Status: OK, Message: fmt.Sprintf("%s read: %d lines, %d frontends, %d backends, %d listens",
		strings.Join(files, " "), vc.Lines, len(vc.Frontends), len(vc.Backends), len(vc.Listens))}
}

func masterCheck(ctx context.Context, h *host.Host) Check {
	sock := h.Config().HAProxy.MasterSocket
	mc := h.Master()
	if mc == nil || sock == "" {
		return Check{Name: "master_socket", Status: Note,
			Message: "haproxy runs without a master CLI (no -S): the reload reads its generations from the process table and cannot read haproxy's own words on a failed load",
			Fix:     "add -S /run/haproxy-master.sock to haproxy's command line (Debian: EXTRAOPTS in the unit, or /etc/default/haproxy), then systemctl restart haproxy"}
	}
	sp, err := mc.ShowProc(ctx)
	if err != nil {
		return Check{Name: "master_socket", Status: Problem, Message: fmt.Sprintf("%s does not answer show proc: %v", sock, err),
			Fix: "check that haproxy runs with -S " + sock + " and that haguard runs as root (ls -l " + sock + ")"}
	}
	return Check{Name: "master_socket", Status: OK, Message: fmt.Sprintf("%s answers: master pid %d, %d reloads, %d workers, %d old workers",
		sock, sp.Master.PID, sp.Reloads, len(sp.Workers), len(sp.OldWorkers))}
}

func stateDirCheck(dir string) Check {
	c := Check{Name: "state_dir"}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.Status, c.Message = Note, dir+" does not exist yet: the first reload makes it (mode 0750)"
		return c
	case err != nil:
		c.Status, c.Message, c.Fix = Problem, fmt.Sprintf("%s: %v", dir, err), "make "+dir+" a directory root can write"
		return c
	case !st.IsDir():
		c.Status, c.Message, c.Fix = Problem, dir+" is not a directory", "move it away; haguard makes the directory at the next reload"
		return c
	}
	perm := st.Mode().Perm()
	owner := ownerOf(st)
	switch {
	case owner != 0 && owner != os.Geteuid():
		c.Status, c.Message = Problem, fmt.Sprintf("%s is owned by uid %d: whoever owns it can change the history a rollback restores", dir, owner)
		c.Fix = fmt.Sprintf("chown -R root: %s", dir)
	case perm&0o002 != 0:
		c.Status, c.Message = Problem, fmt.Sprintf("%s is mode %#o: anyone can write the history a rollback restores", dir, perm)
		c.Fix = "chmod 0750 " + dir
	case perm&0o004 != 0:
		c.Status, c.Message = Problem, fmt.Sprintf("%s is mode %#o: anyone can read the configs in its history (stats passwords, userlists)", dir, perm)
		c.Fix = "chmod 0750 " + dir
	default:
		c.Status, c.Message = OK, fmt.Sprintf("%s: mode %#o, owner uid %d", dir, perm, owner)
	}
	return c
}
