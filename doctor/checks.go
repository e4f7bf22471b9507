package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/haguard/haguard/agent/probe"
	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/systemd"
	"github.com/haguard/haguard/validate"
)

// debianStats is the stats socket line of Debian's stock haproxy.cfg.
const debianStats = "stats socket /run/haproxy/admin.sock mode 660 level admin"

func statsCheck(ctx context.Context, h *host.Host, vc *validate.Config) Check {
	var sock string
	if vc != nil || h.Config().HAProxy.StatsSocket != "" {
		sock = h.StatsSocket(vc)
	}
	if sock == "" {
		return Check{Name: "stats_socket", Status: Problem,
			Message: "no stats socket (none in haguard.yaml, no `stats socket` in the config): the reload cannot see a backend with no server UP, nor status or probe its servers' health",
			Fix:     "add to the global section: " + debianStats}
	}
	hl, err := probe.ReadHealth(ctx, sock)
	if err != nil {
		return Check{Name: "stats_socket", Status: Problem, Message: fmt.Sprintf("%s does not answer show stat: %v", sock, err),
			Fix: "check the `stats socket` line of the config (a path haguard can reach, level user or above) and that haguard runs as root"}
	}
	up := 0
	for _, s := range hl.Servers {
		if s.Usable() {
			up++
		}
	}
	return Check{Name: "stats_socket", Status: OK, Message: fmt.Sprintf("%s answers: %d servers, %d taking traffic", sock, len(hl.Servers), up)}
}

// probeChecks says, per probe target, whether its probe fails when the
// servers behind it are dead: what makes a reload's probe worth trusting.
func probeChecks(h *host.Host, vc *validate.Config) []Check {
	targets, err := h.ProbeTargets(vc)
	if err != nil {
		return []Check{{Name: "probe", Status: Problem, Message: fmt.Sprintf("no probe targets: %v", err),
			Fix: "fix haguard.yaml's probe block (haguard probe says more)"}}
	}
	if len(targets) == 0 {
		return []Check{{Name: "probe", Status: Problem, Message: "nothing to probe: the config binds no TCP address and probe.targets is empty",
			Fix: "name the addresses clients use in haguard.yaml's probe.targets"}}
	}
	out := make([]Check, 0, len(targets))
	for _, t := range targets {
		out = append(out, probeCheck(t))
	}
	return out
}

func probeCheck(t probe.Target) Check {
	c := Check{Name: "probe", Status: OK}
	where := fmt.Sprintf("%s (%s)", t.Address, t.Kind)
	backends := strings.Join(t.Backends, ", ")
	switch {
	case t.Kind == probe.KindIdleHold:
		c.Status, c.Message = Note, where+": an idle-hold tells whether the path cuts idle sessions, not whether a server is dead"
	case len(t.Backends) == 0:
		c.Status, c.Message = Note, where+": routes to no backend the config names (haproxy answers it itself, or it is not one of its binds): there is no server to be dead"
	case t.Kind == probe.KindHTTP:
		c.Message = fmt.Sprintf("%s: a dead server shows: haproxy answers its own 503, which fails the probe (backends %s)", where, backends)
	case t.Kind == probe.KindMySQL:
		c.Message = fmt.Sprintf("%s: a dead server shows: haproxy closes before the MySQL handshake (backends %s)", where, backends)
	case t.Kind == probe.KindTCP && t.Expect != "":
		c.Message = fmt.Sprintf("%s: a dead server shows: the reply must match %q (backends %s)", where, t.Expect, backends)
	case t.Kind == probe.KindTCP && t.Linger < 0:
		c.Status, c.Message = Problem, where+": its linger is off, so a connection haproxy accepts passes whether a server answers or not"
		c.Fix = fmt.Sprintf("drop linger for %s from haguard.yaml's probe block, or give it an expect", t.Address)
	case t.Kind == probe.KindTCP && t.GiveUp > probe.MaxGiveUp:
		c.Status = Problem
		c.Message = fmt.Sprintf("%s: haproxy gives up on a dead server after %s (retries × min(timeout connect, 1s)), longer than a probe watches (%s): a dead server looks alive",
			where, t.GiveUp, probe.LingerFor(t))
		c.Fix = fmt.Sprintf("in backend %s set `retries 1` (or a shorter `timeout connect`), or give %s an expect in haguard.yaml's probe.targets", backends, t.Address)
	case t.Kind == probe.KindTCP:
		within := "at once (retries 0)"
		if t.GiveUp > 0 {
			within = "within " + t.GiveUp.String()
		}
		c.Message = fmt.Sprintf("%s: a dead server shows: haproxy closes the connection %s when no server answers, and the probe watches %s (backends %s)",
			where, within, probe.LingerFor(t), backends)
	default:
		c.Status, c.Message = Note, where+": unknown probe kind"
	}
	return c
}

// versionChecks: the binary the unit runs, and whether the master still
// runs the binary on disk.
func versionChecks(ctx context.Context, h *host.Host, u *systemd.Unit) []Check {
	bin := h.Config().HAProxy.Binary
	t, err := h.Target(ctx)
	var out []Check
	switch {
	case err != nil || t == nil || t.Version == "":
		out = append(out, Check{Name: "haproxy", Status: Problem, Message: fmt.Sprintf("cannot ask %s its version: %v", bin, err),
			Fix: "check that the unit's binary runs: " + bin + " -v"})
	case !t.AtLeast("2.4"):
		out = append(out, Check{Name: "haproxy", Status: Problem, Message: fmt.Sprintf("haproxy %s (%s) is older than 2.4: its master CLI and reload differ from what haguard knows (tested: 2.6 to 3.2)", t.Version, bin),
			Fix: "upgrade haproxy (Debian 12: apt-get install haproxy gives 2.6)"})
	case !t.AtLeast("2.6"):
		out = append(out, Check{Name: "haproxy", Status: Note, Message: fmt.Sprintf("haproxy %s (%s): older than the versions haguard is tested against (2.6 to 3.2)", t.Version, bin)})
	default:
		out = append(out, Check{Name: "haproxy", Status: OK, Message: fmt.Sprintf("haproxy %s (%s)", t.Version, bin)})
	}
	if u != nil && u.MainPID > 0 {
		if exe, err := os.Readlink("/proc/" + strconv.Itoa(int(u.MainPID)) + "/exe"); err == nil && strings.HasSuffix(exe, " (deleted)") {
			out = append(out, Check{Name: "haproxy", Status: Note,
				Message: fmt.Sprintf("the master (pid %d) runs %s, replaced on disk since it started (a package upgrade?): it runs the old version until it re-executes", u.MainPID, exe),
				Fix:     "systemctl restart " + u.Name + " at a quiet moment (a reload re-executes the new binary too)"})
		}
	}
	return out
}

// tokenCheck judges the API token file by the rules `haguard serve` uses.
func tokenCheck(path string) Check {
	c := Check{Name: "token_file"}
	_, err := api.LoadTokens(path)
	var te *api.TokenFileError
	switch {
	case err == nil:
		c.Status, c.Message = OK, path+": usable by haguard serve (mode and owner allow only haguard)"
	case errors.Is(err, os.ErrNotExist):
		c.Status, c.Message = Note, path+" does not exist: haguard serve (the REST API) refuses to start without it; the command line does not need it"
		c.Fix = fmt.Sprintf("(umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=' > %s)", path)
	case errors.As(err, &te):
		c.Status, c.Message = Problem, fmt.Sprintf("haguard serve would refuse %s: %s", path, te.Reason)
		c.Fix = fmt.Sprintf("chown root: %s && chmod 0600 %s (a token of %d characters or more, no spaces)", path, path, api.MinTokenLen)
	default:
		c.Status, c.Message, c.Fix = Problem, err.Error(), "make "+path+" a regular file root can read"
	}
	return c
}

// DropInOn reports whether the unit's ExecReload runs haguard's
// exec-reload (a plain `systemctl reload` goes through haguard), and
// from which drop-in.
func DropInOn(u systemd.Unit) (bool, string) {
	for _, e := range u.ExecReload {
		if slices.Contains(e.Argv, "exec-reload") {
			for _, p := range u.DropInPaths {
				if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "exec-reload") {
					return true, p
				}
			}
			return true, ""
		}
	}
	return false, ""
}

func dropInCheck(u *systemd.Unit) (Check, bool) {
	if u == nil {
		return Check{Name: "dropin", Status: Note, Message: "systemd cannot say what `systemctl reload` runs"}, false
	}
	if on, path := DropInOn(*u); on {
		return Check{Name: "dropin", Status: OK, Message: fmt.Sprintf("`systemctl reload %s` goes through haguard (drop-in %s)", u.Name, path)}, true
	}
	return Check{Name: "dropin", Status: Note,
		Message: fmt.Sprintf("`systemctl reload %s` bypasses haguard: a bare haproxy -c, then USR2, and nothing verifies the new generation", u.Name),
		Fix:     "haguard doctor --enable-dropin"}, false
}

func ownerOf(st os.FileInfo) int {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid)
	}
	return -1
}
