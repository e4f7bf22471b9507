package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/systemd"
)

// Debian's haproxy package: what haguard assumes when neither the running
// master nor the unit can say (no systemd, or the unit is unknown).
const (
	debianConfig       = "/etc/haproxy/haproxy.cfg"
	debianBinary       = "/usr/sbin/haproxy"
	debianMasterSocket = "/run/haproxy-master.sock"
	debianStatsSocket  = "/run/haproxy/admin.sock"
)

// Fact is one discovered value and where it came from.
type Fact struct {
	Value string `json:"value"`
	From  string `json:"from"`
}

// Discovery is what the unit runs: the binary, every -f, the master
// socket (-S) and the pid file (-p), each with its source: the running
// master's command line, else the unit's ExecStart (expanded with its
// Environment and EnvironmentFiles, as systemd does), else haguard.yaml,
// else Debian's defaults. haguard.yaml may override what is not
// discovered, never contradict what is (Reconcile).
type Discovery struct {
	Unit         string   `json:"unit"`
	FragmentPath string   `json:"fragment_path,omitempty"`
	MainPID      int      `json:"main_pid"`
	Binary       Fact     `json:"binary"`
	Configs      []string `json:"configs"`
	ConfigsFrom  string   `json:"configs_from"`
	MasterSocket Fact     `json:"master_socket"`
	PIDFile      Fact     `json:"pid_file"`
	// StatsSocket comes from haguard.yaml or the config's own `stats
	// socket` (filled in by the caller that parsed it).
	StatsSocket Fact `json:"stats_socket"`
	// Env is the environment the unit gives haproxy (Environment= and
	// the EnvironmentFiles), for the config's "${VAR}"s; nil when no
	// unit was read.
	Env map[string]string `json:"-"`
	// WorkDir is haproxy's working directory (relative paths of the
	// config start there): the master's, else the unit's, else "/".
	WorkDir string `json:"work_dir,omitempty"`
	// MasterWorker: haproxy runs with -W or -Ws (the master re-reads the
	// config with HAPROXY_MWORKER set).
	MasterWorker bool `json:"master_worker"`
	// Notes say what could not be read, and what was assumed instead.
	Notes []string `json:"notes,omitempty"`
}

// procRoot is where processes are read (tests point it elsewhere).
type procRoot string

func (p procRoot) path(pid int, name string) string {
	return filepath.Join(string(p), strconv.Itoa(pid), name)
}

// Discover reads what u runs. It never fails: what cannot be read is a
// note, and the next source is used.
func Discover(u systemd.Unit) Discovery { return procRoot("/proc").discover(u) }

func (proc procRoot) discover(u systemd.Unit) Discovery {
	d := Discovery{Unit: u.Name, FragmentPath: u.FragmentPath, MainPID: int(u.MainPID), WorkDir: "/"}
	if u.FragmentPath != "" || len(u.ExecStart) > 0 {
		d.Env = unitEnv(u, &d.Notes)
	}
	var a Argv
	from := ""
	if u.MainPID > 0 {
		argv, cwd, exe, err := proc.command(int(u.MainPID))
		// A master caught re-executing itself (a reload in flight, say
		// of a run that was killed) shows a command line without its
		// -f for a moment: read it again, briefly, before trusting it.
		for try := 0; err == nil && isHAProxy(argv, exe) && len(ParseArgv(argv).Configs) == 0 && try < 20; try++ {
			time.Sleep(50 * time.Millisecond)
			argv, cwd, exe, err = proc.command(int(u.MainPID))
		}
		switch {
		case err != nil:
			d.Notes = append(d.Notes, fmt.Sprintf("master pid %d: %v", u.MainPID, err))
		case !proc.inCgroup(int(u.MainPID), u.ControlGroup):
			// Another PID or cgroup namespace than systemd's: this pid
			// names some other process here.
			d.Notes = append(d.Notes, fmt.Sprintf("MainPID %d is not in %s as seen from here (another PID namespace?): reading the unit's ExecStart instead", u.MainPID, u.ControlGroup))
		case !isHAProxy(argv, exe):
			d.Notes = append(d.Notes, fmt.Sprintf("MainPID %d runs %q, not haproxy", u.MainPID, exe))
		case len(ParseArgv(argv).Configs) == 0:
			d.Notes = append(d.Notes, fmt.Sprintf("master pid %d: its command line names no config (%q): reading the unit's ExecStart instead", u.MainPID, strings.Join(argv, " ")))
		default:
			a = ParseArgv(argv).Resolve(cwd)
			a.Binary = exe
			d.WorkDir = cwd
			from = fmt.Sprintf("master command line (pid %d)", u.MainPID)
		}
	}
	if from == "" {
		for _, e := range u.ExecStart {
			argv := ExpandExec(e.Argv, d.Env)
			if !isHAProxy(argv, e.Path) {
				continue
			}
			a = ParseArgv(argv).Resolve(u.WorkingDirectory)
			a.Binary = e.Path
			if u.WorkingDirectory != "" {
				d.WorkDir = u.WorkingDirectory
			}
			from = "unit ExecStart"
			if u.FragmentPath != "" {
				from += " (" + u.FragmentPath + ")"
			}
			break
		}
	}
	if from == "" {
		d.Notes = append(d.Notes, "systemd gave no haproxy command line for "+u.Name+": assuming Debian's paths")
		d.Binary = Fact{debianBinary, "default"}
		d.Configs, d.ConfigsFrom = []string{debianConfig}, "default"
		d.MasterSocket = Fact{debianMasterSocket, "default"}
		return d
	}
	d.Binary = Fact{a.Binary, from}
	d.MasterWorker = a.MasterWorker
	d.Configs, d.ConfigsFrom = a.Configs, from
	d.MasterSocket = Fact{a.MasterSocket, from}
	d.PIDFile = Fact{a.PIDFile, from}
	if a.MasterSocket == "" {
		d.Notes = append(d.Notes, "haproxy runs without a master CLI (-S): generations are read from the process table")
	}
	return d
}

// command reads a process's argv, working directory and executable.
func (proc procRoot) command(pid int) (argv []string, cwd, exe string, err error) {
	b, err := master.ReadSettled(proc.path(pid, "cmdline"))
	if err != nil {
		return nil, "", "", err
	}
	for _, w := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		argv = append(argv, string(w))
	}
	if len(argv) == 0 {
		return nil, "", "", errors.New("empty command line (a zombie?)")
	}
	cwd, err = os.Readlink(proc.path(pid, "cwd"))
	if err != nil {
		return nil, "", "", err
	}
	exe, err = os.Readlink(proc.path(pid, "exe"))
	if err != nil {
		return nil, "", "", err
	}
	return argv, cwd, strings.TrimSuffix(exe, " (deleted)"), nil
}

// inCgroup reports whether pid sits exactly in cg (the unit's cgroup as
// systemd names it), on the unified or the name=systemd hierarchy. A
// process seen from another cgroup namespace has another path.
func (proc procRoot) inCgroup(pid int, cg string) bool {
	if cg == "" {
		return true // systemd gave none: nothing to check against
	}
	b, err := os.ReadFile(proc.path(pid, "cgroup"))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 && (parts[0] == "0" || parts[1] == "name=systemd") && parts[2] == cg {
			return true
		}
	}
	return false
}

func isHAProxy(argv []string, exe string) bool {
	for _, p := range []string{exe, firstOf(argv)} {
		if strings.HasPrefix(filepath.Base(p), "haproxy") {
			return true
		}
	}
	return false
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// unitEnv is the environment systemd gives the unit's commands:
// Environment=, overridden by the EnvironmentFiles in order (as
// systemd.exec(5) says), and $MAINPID.
func unitEnv(u systemd.Unit, notes *[]string) map[string]string {
	env := map[string]string{}
	for _, kv := range u.Environment {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for _, ef := range u.EnvironmentFiles {
		m, err := ReadEnvFile(ef.Path)
		if err != nil {
			if !(ef.Optional && errors.Is(err, os.ErrNotExist)) {
				*notes = append(*notes, fmt.Sprintf("EnvironmentFile %s: %v", ef.Path, err))
			}
			continue
		}
		for k, v := range m {
			env[k] = v
		}
	}
	if u.MainPID > 0 {
		env["MAINPID"] = strconv.Itoa(int(u.MainPID))
	}
	return env
}

// ConflictError is haguard.yaml naming something else than what the unit
// runs: haguard would install, check or watch the wrong thing, so it
// refuses (exit 2).
type ConflictError struct {
	Key, YAML, Unit, From string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("haguard.yaml %s is %s, but the unit runs with %s (from the %s): fix haguard.yaml, or drop the key (haguard reads it from the unit)",
		e.Key, e.YAML, e.Unit, e.From)
}

// Reconcile applies haguard.yaml's haproxy block to d: a key that is set
// fills what was not discovered, and must agree with what was (else a
// *ConflictError for each key that disagrees). It returns the effective
// haproxy block.
func (d *Discovery) Reconcile(h config.HAProxy) (config.HAProxy, error) {
	discovered := func(f Fact) bool { return f.From != "" && f.From != "default" }
	var errs []error
	check := func(key, yaml string, f *Fact, same func(a, b string) bool) {
		switch {
		case yaml == "":
		case !discovered(*f):
			*f = Fact{yaml, "haguard.yaml"}
		case !same(yaml, f.Value):
			errs = append(errs, &ConflictError{Key: "haproxy." + key, YAML: yaml, Unit: f.Value, From: f.From})
		}
	}
	check("binary", h.Binary, &d.Binary, samePath)
	check("master_socket", h.MasterSocket, &d.MasterSocket, samePath)
	if h.StatsSocket != "" {
		d.StatsSocket = Fact{h.StatsSocket, "haguard.yaml"}
	}
	if len(h.Configs) > 0 {
		switch {
		case d.ConfigsFrom == "" || d.ConfigsFrom == "default":
			d.Configs, d.ConfigsFrom = slices.Clone(h.Configs), "haguard.yaml"
		case !slices.EqualFunc(h.Configs, d.Configs, samePath):
			errs = append(errs, &ConflictError{Key: "haproxy.configs", YAML: strings.Join(h.Configs, " "),
				Unit: strings.Join(d.Configs, " "), From: d.ConfigsFrom})
		}
	}
	out := h
	out.Binary, out.MasterSocket, out.StatsSocket = d.Binary.Value, d.MasterSocket.Value, d.StatsSocket.Value
	out.Configs = slices.Clone(d.Configs)
	return out, errors.Join(errs...)
}

// samePath compares two paths after cleaning and resolving symlinks.
func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ra, erra := filepath.EvalSymlinks(a)
	rb, errb := filepath.EvalSymlinks(b)
	return erra == nil && errb == nil && ra == rb
}
