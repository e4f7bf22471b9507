package host

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Argv is what an haproxy command line says about what runs.
type Argv struct {
	// Binary is argv[0] (or the exe the command line names).
	Binary string
	// Configs are the -f arguments (and those after "--"), files or
	// directories, in order, as written (relative ones resolve against
	// Chdir, else the working directory).
	Configs []string
	// MasterSocket is the path of the first -S that binds a unix socket
	// ("" when none: the master CLI is off).
	MasterSocket string
	// PIDFile is -p.
	PIDFile string
	// Chdir is -C: haproxy changes to it before it reads the configs.
	Chdir string
	// MasterWorker is -W or -Ws (or -Ws's systemd notify mode: Notify).
	MasterWorker, Notify bool
	// Check is -c: a config check, not a server.
	Check bool
}

// haproxy's options that take one argument (haproxy(1), 2.6 to 3.x);
// -sf and -st take a list of pids up to the next option.
var oneArg = map[string]bool{"-f": true, "-S": true, "-p": true, "-C": true, "-L": true, "-m": true, "-N": true,
	"-x": true, "-n": true}

// ParseArgv reads an haproxy command line (argv[0] first).
func ParseArgv(argv []string) Argv {
	var a Argv
	if len(argv) == 0 {
		return a
	}
	a.Binary = argv[0]
	for i := 1; i < len(argv); i++ {
		arg := argv[i]
		next := func() string {
			if i+1 < len(argv) {
				i++
				return argv[i]
			}
			return ""
		}
		switch {
		case arg == "--":
			a.Configs = append(a.Configs, argv[i+1:]...)
			return a
		case arg == "-f":
			if v := next(); v != "" {
				a.Configs = append(a.Configs, v)
			}
		case arg == "-S":
			if v := next(); a.MasterSocket == "" {
				a.MasterSocket = masterSocketPath(v)
			}
		case arg == "-p":
			a.PIDFile = next()
		case arg == "-C":
			a.Chdir = next()
		case arg == "-W":
			a.MasterWorker = true
		case arg == "-Ws":
			a.MasterWorker, a.Notify = true, true
		case arg == "-c":
			a.Check = true
		case arg == "-sf" || arg == "-st":
			for i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
				i++
			}
		case oneArg[arg]:
			next()
		}
	}
	return a
}

// masterSocketPath is the unix path of a -S argument
// ("/run/haproxy-master.sock,mode,600", "unix@/run/x.sock"); "" for a TCP
// master CLI ("ipv4@127.0.0.1:9999"), which haguard does not dial.
func masterSocketPath(v string) string {
	addr, _, _ := strings.Cut(v, ",")
	if rest, ok := strings.CutPrefix(addr, "unix@"); ok {
		return rest
	}
	if strings.HasPrefix(addr, "/") {
		return addr
	}
	return ""
}

// Resolve makes the relative configs and paths of a absolute, the way
// haproxy started in dir would see them.
func (a Argv) Resolve(dir string) Argv {
	base := dir
	if a.Chdir != "" {
		base = abs(dir, a.Chdir)
	}
	out := a
	out.Configs = make([]string, len(a.Configs))
	for i, c := range a.Configs {
		out.Configs[i] = abs(base, c)
	}
	if a.MasterSocket != "" {
		out.MasterSocket = abs(dir, a.MasterSocket)
	}
	if a.PIDFile != "" {
		out.PIDFile = abs(dir, a.PIDFile)
	}
	return out
}

func abs(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if dir == "" {
		dir = "/"
	}
	return filepath.Join(dir, p)
}

// ExpandExec expands an ExecStart= command line the way systemd does at
// exec (systemd.service(5), "Command lines"): a word that is exactly
// $NAME becomes the variable's value split at white space (and no word
// when it is empty or unset); ${NAME} inside a word is replaced as is;
// $$ is a literal $.
func ExpandExec(argv []string, env map[string]string) []string {
	var out []string
	for _, w := range argv {
		if name, ok := wholeVar(w); ok {
			out = append(out, strings.Fields(env[name])...)
			continue
		}
		out = append(out, expandBraces(w, env))
	}
	return out
}

func wholeVar(w string) (string, bool) {
	if len(w) < 2 || w[0] != '$' || strings.HasPrefix(w, "$$") || strings.HasPrefix(w, "${") {
		return "", false
	}
	name := w[1:]
	for _, r := range name {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return "", false
		}
	}
	return name, true
}

func expandBraces(w string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		switch {
		case strings.HasPrefix(w[i:], "$$"):
			b.WriteByte('$')
			i++
		case strings.HasPrefix(w[i:], "${"):
			end := strings.IndexByte(w[i:], '}')
			if end < 0 {
				b.WriteString(w[i:])
				return b.String()
			}
			b.WriteString(env[w[i+2:i+end]])
			i += end
		default:
			b.WriteByte(w[i])
		}
	}
	return b.String()
}

// ReadEnvFile reads a systemd EnvironmentFile: KEY=VALUE lines, # and ;
// comments, values optionally in single or double quotes, a trailing
// backslash continuing the line.
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	var cont strings.Builder
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasSuffix(line, `\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`))
			continue
		}
		line = cont.String() + line
		cont.Reset()
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return out, fmt.Errorf("%s:%d: not KEY=VALUE", path, n)
		}
		k, v = strings.TrimSpace(strings.TrimPrefix(k, "export ")), strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	return out, sc.Err()
}
