package validate

import (
	"cmp"
	"path/filepath"
	"slices"
	"strings"
)

// Access says what haproxy does with a referenced file, which decides
// where the candidate policy lets it live.
type Access string

// The accesses.
const (
	// AccessRead: read when haproxy starts (maps, ACL files, Lua,
	// certificates, data files).
	AccessRead Access = "read"
	// AccessServe: read, and its content is sent to clients (errorfile,
	// `http-request return file`).
	AccessServe Access = "serve"
	// AccessWrite: created or replaced by haproxy (a unix socket it
	// listens on, a pidfile, a ring's backing file) or its chroot.
	AccessWrite Access = "write"
	// AccessConnect: a unix socket haproxy connects to (server, log).
	AccessConnect Access = "connect"
	// AccessExec: a program haproxy runs (program command, external-check).
	// Not a configuration file: a config set leaves these out.
	AccessExec Access = "exec"
)

// FileRef is one file (or directory) a configuration makes haproxy touch.
type FileRef struct {
	// Kind names the reference: "acl-file", "map", "crt", "ca-file",
	// "errorfile", "lua", "socket", ... (see docs/security.md).
	Kind string `json:"kind"`
	// Access is what haproxy does with it.
	Access Access `json:"access"`
	// Raw is the path as written.
	Raw string `json:"raw"`
	// Path is absolute and clean, resolved the way haproxy resolves it
	// (its working directory, default-path, crt-base, ca-base, key-base,
	// server-state-base, unix-bind prefix); "" when it cannot be known
	// before haproxy runs (an environment variable).
	Path string `json:"path"`
	// Alt are other paths a relative Raw may name, for a reader that
	// must be conservative (haproxy started elsewhere, the config
	// installed in another directory). Empty for an absolute Raw.
	Alt []string `json:"alt,omitempty"`
	// Optional is a file haproxy loads only when it exists (a
	// certificate's .key, .ocsp, .issuer and .sctl companions).
	Optional bool `json:"optional,omitempty"`
	// Keyword is the directive's keyword ("acl", "bind", "errorfile").
	Keyword string `json:"keyword"`
	Pos     Pos    `json:"pos"`
	// Section is the section as findings print it ("frontend web").
	Section string `json:"section"`

	// list is how the entries of a crt-list resolve (CrtListRefs).
	list *listBases
	// words are the line's words as written, dec as haproxy reads them
	// (the policy compares and allows lines).
	words, dec []string
}

// listBases are the directories a crt-list's relative entries start from:
// crt-base for certificates, ca-base for CA and CRL files, else the
// directories of the line that names the list.
type listBases struct {
	crt, ca string
	dirs    []string
}

// Paths are Path and Alt: every path the reference may name.
func (r FileRef) Paths() []string {
	if r.Path == "" {
		return nil
	}
	return append([]string{r.Path}, r.Alt...)
}

// IsTLS reports whether the reference is TLS material (a certificate,
// key, CA, CRL, OCSP response, DH parameters or TLS ticket keys).
func (r FileRef) IsTLS() bool { return tlsKinds[r.Kind] }

var tlsKinds = map[string]bool{
	"crt": true, "crt-list": true, "crt-extra": true, "key": true, "ca-file": true, "ca-verify-file": true,
	"ca-sign-file": true, "crl-file": true, "ocsp": true, "issuer": true, "sctl": true,
	"issuers-chain-path": true, "dh-param": true, "tls-ticket-keys": true,
}

// RefOptions say where relative paths start.
type RefOptions struct {
	// WorkDir is haproxy's working directory: "/" when empty, that of
	// haproxy.service.
	WorkDir string
	// ConfigDirs are more directories a relative path may start from
	// under `default-path config|parent`: where the checked files will
	// be installed, when they are checked somewhere else. They go to Alt.
	ConfigDirs []string
}

// FileRefs lists every file the configuration makes haproxy read, serve,
// create, connect to or run, in file and line order, resolved from
// haproxy.service's working directory ("/"). It reads no file: the
// entries of a crt-list are CrtListRefs.
func FileRefs(cfg *Config) []FileRef { return FileRefsWith(cfg, RefOptions{}) }

// FileRefsWith is FileRefs with another working directory.
func FileRefsWith(cfg *Config, o RefOptions) []FileRef {
	if o.WorkDir == "" {
		o.WorkDir = "/"
	}
	w := &refWalker{o: o, files: cfg.Files}
	for _, l := range orderedLines(cfg) {
		// The walker reads words as haproxy reads them (quotes, escapes);
		// the references keep the line as written, which the policy
		// compares with the running config.
		d := *l.d
		w.raw = d.Words
		d.Words, _ = haproxyWords(d.Words)
		w.line(l.sec, d)
	}
	return w.out
}

type secLine struct {
	rank, line int // file (in -f order) and line: the sort key
	sec        *Proxy
	d          *Directive
}

// orderedLines are the lines of every section in the order haproxy reads
// them (file by -f order, then line): base directories and default-path
// apply from their line on.
func orderedLines(cfg *Config) []secLine {
	rank := make(map[string]int, len(cfg.Files))
	for i, f := range cfg.Files {
		if _, ok := rank[f]; !ok {
			rank[f] = i
		}
	}
	n := 0
	sections := append(cfg.AllSections(), cfg.Others...)
	for _, p := range sections {
		n += len(p.Directives)
	}
	out := make([]secLine, 0, n)
	for _, p := range sections {
		for i := range p.Directives {
			d := &p.Directives[i]
			r, ok := rank[d.File]
			if !ok {
				r = len(cfg.Files) // a file FileRefs was not told of: last
			}
			out = append(out, secLine{rank: r, line: d.Line, sec: p, d: d})
		}
	}
	slices.SortStableFunc(out, func(a, b secLine) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.line, b.line))
	})
	return out
}

// refWalker walks the lines in order and keeps the state that resolves a
// relative path: default-path and the *-base directories.
type refWalker struct {
	o     RefOptions
	files []string
	out   []FileRef
	raw   []string // the current line's words as written

	mode, origin                       string // default-path
	crtBase, caBase, keyBase, srvState string
	unixPrefix                         string
	// crt-store sections have their own crt-base and key-base.
	storeSec                   *Proxy
	storeCrtBase, storeKeyBase string
}

// bases are the directories a relative path in file may start from:
// haproxy's own choice first (per default-path), then the conservative
// others (the working directory, ConfigDirs).
func (w *refWalker) bases(file string) []string {
	var out []string
	add := func(d string) {
		if !filepath.IsAbs(d) {
			d = filepath.Join(w.o.WorkDir, d)
		}
		d = filepath.Clean(d)
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	dir := ""
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		dir = file[:i]
		if dir == "" {
			dir = "/"
		}
	}
	switch w.mode {
	case "config":
		add(cmp.Or(dir, "."))
	case "parent":
		add(filepath.Join(cmp.Or(dir, "."), ".."))
	case "origin":
		add(w.origin)
	}
	add(w.o.WorkDir)
	if w.mode == "config" || w.mode == "parent" {
		for _, c := range w.o.ConfigDirs {
			if w.mode == "parent" {
				c = filepath.Join(c, "..")
			}
			add(c)
		}
	}
	return out
}

// resolve turns raw (relative to base when base is set, else to the
// file's directories) into a primary path and alternatives. An
// environment variable makes it unknowable: "".
func (w *refWalker) resolve(raw, base string, pos Pos) (string, []string) {
	if raw == "" || hasEnvRef(raw) || hasEnvRef(base) {
		return "", nil
	}
	if filepath.IsAbs(raw) {
		return filepath.Clean(raw), nil
	}
	var dirs []string
	if base != "" && filepath.IsAbs(base) {
		dirs = []string{filepath.Clean(base)}
	} else {
		for _, b := range w.bases(pos.File) {
			dirs = append(dirs, filepath.Join(b, base))
		}
	}
	var paths []string
	for _, d := range dirs {
		p := filepath.Join(d, raw)
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	return paths[0], paths[1:]
}

// add records a reference found on d.
func (w *refWalker) add(sec *Proxy, d Directive, kind string, acc Access, raw, base string) {
	if raw == "" {
		return
	}
	p, alt := w.resolve(raw, base, d.Pos)
	w.out = append(w.out, FileRef{Kind: kind, Access: acc, Raw: raw, Path: p, Alt: alt,
		Keyword: d.Words[0], Pos: d.Pos, Section: sec.Section(), words: w.raw, dec: d.Words})
}

// addSocket records a unix socket address (bind, server, log...); other
// address families name no file.
func (w *refWalker) addSocket(sec *Proxy, d Directive, kind string, acc Access, addr string, listener bool) {
	for _, a := range strings.Split(addr, ",") {
		path, ok := unixPath(a)
		if !ok {
			continue
		}
		start := len(w.out)
		w.add(sec, d, kind, acc, path, "")
		if listener && w.unixPrefix != "" && len(w.out) > start {
			// unix-bind prefix is prepended to every listening socket's
			// path; keep the path as written as an alternative.
			r := &w.out[len(w.out)-1]
			if p, _ := w.resolve(w.unixPrefix+path, "", d.Pos); p != "" && r.Path != "" {
				r.Alt = append([]string{r.Path}, r.Alt...)
				r.Path = p
			}
		}
	}
}

// unixPath extracts the file of a unix socket address: "/path",
// "unix@path", "uxst@path", "uxdg@path". Abstract sockets, fds and
// network addresses have none.
func unixPath(addr string) (string, bool) {
	if strings.HasPrefix(addr, "/") {
		return addr, true
	}
	for _, p := range []string{"unix@", "uxst@", "uxdg@"} {
		if rest, ok := strings.CutPrefix(addr, p); ok && rest != "" {
			return rest, true
		}
	}
	return "", false
}

// crtExtras are the companions haproxy looks for next to a certificate
// (ssl-load-extra-files, "all" by default).
var crtExtras = []string{".key", ".ocsp", ".issuer", ".sctl"}

// addCrt records a certificate and its optional companions.
func (w *refWalker) addCrt(sec *Proxy, d Directive, raw, base string) {
	start := len(w.out)
	w.add(sec, d, "crt", AccessRead, raw, base)
	if len(w.out) == start || w.out[start].Path == "" || strings.HasSuffix(raw, "/") {
		return
	}
	main := w.out[start]
	for _, ext := range crtExtras {
		x := main
		x.Kind, x.Optional, x.Raw, x.Path, x.Alt = "crt-extra", true, main.Raw+ext, main.Path+ext, nil
		for _, a := range main.Alt {
			x.Alt = append(x.Alt, a+ext)
		}
		w.out = append(w.out, x)
	}
}
