package validate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/haguard/haguard/config"
)

// Policy is what a candidate may bring (haguard.yaml policy:, the PO
// rules) and the running config it is compared with. Build it with
// NewPolicy; a zero Policy allows no file anywhere.
type Policy struct {
	// AllowedPaths are the directories (or files) a config may read and
	// serve files from.
	AllowedPaths []string
	// CertPaths are where TLS material may also be read from; nothing
	// under them may be served to clients.
	CertPaths []string
	// RuntimePaths are where haproxy may create sockets, a pidfile, ring
	// backing files, its chroot, and the unix sockets it connects to.
	RuntimePaths []string
	// Allow are lines allowed on purpose: globs over the line's words
	// joined by one space, where * matches any run of characters.
	Allow []string
	// Running is the running config's model: a line it has, unchanged in
	// the same section, stays allowed, and so does a file it already
	// references the same way. nil: nothing is grandfathered.
	Running *Config
	// Refs say where relative paths start (haproxy's working directory,
	// where the candidate will be installed).
	Refs RefOptions
	// ReadFile reads a crt-list the candidate names, once its path is
	// allowed (nil: the file system; a regular file of at most 1 MiB).
	ReadFile func(path string) ([]byte, error)
}

// NewPolicy builds the policy of haguard.yaml for the config set whose
// -f files are configs (haproxy.configs: their directories are allowed,
// and relative paths may start there), compared with running (nil: none).
func NewPolicy(pc config.Policy, configs []string, running *Config) *Policy {
	p := &Policy{
		AllowedPaths: slices.Clone(pc.AllowedPaths),
		CertPaths:    slices.Clone(pc.CertPaths),
		RuntimePaths: slices.Clone(pc.RuntimePaths),
		Allow:        slices.Clone(pc.Allow),
		Running:      running,
	}
	for _, c := range configs {
		if !filepath.IsAbs(c) {
			continue
		}
		d := filepath.Clean(c)
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			d = filepath.Dir(d) // a file: its directory (a -f directory is itself)
		}
		if d != "/" && !slices.Contains(p.AllowedPaths, d) {
			p.AllowedPaths = append(p.AllowedPaths, d)
		}
		if !slices.Contains(p.Refs.ConfigDirs, d) {
			p.Refs.ConfigDirs = append(p.Refs.ConfigDirs, d)
		}
	}
	return p
}

// maxListBytes bounds a crt-list the policy reads.
const maxListBytes = 1 << 20

// readList reads a crt-list without blocking on a FIFO or a device, only
// when it is a regular file of at most 1 MiB.
func readList(path string) ([]byte, error) { return readRegular(path, maxListBytes) }

// lineKey identifies a line by its section and words, not its position:
// the same line moved elsewhere in the same section is the same line.
func lineKey(section string, words []string) string {
	return section + "\x00" + strings.Join(words, "\x00")
}

// lineText is a line as allow globs match it: words joined by one space.
func lineText(words []string) string { return strings.Join(words, " ") }

// globMatch matches s against a pattern where * is any run of characters
// (slashes and spaces included) and everything else is literal.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

func (p *Policy) allowed(words []string) bool {
	t := lineText(words)
	for _, a := range p.Allow {
		if globMatch(strings.Join(strings.Fields(a), " "), t) {
			return true
		}
	}
	return false
}

// within reports whether path is root or under it.
func within(path, root string) bool {
	return path == root || strings.HasPrefix(path, strings.TrimSuffix(root, "/")+"/")
}

// resolvedForms are path itself and, when it (or its longest existing
// prefix) goes through a symlink, where that leads: a path must be
// allowed both ways, so a symlink cannot carry a reference out.
func resolvedForms(path string) []string {
	out := []string{path}
	rest := ""
	for dir := path; ; {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			r := filepath.Join(real, rest)
			if r != path {
				out = append(out, r)
			}
			return out
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return out
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
}

// rootSet is a list of roots, with their symlink-resolved forms.
type rootSet []string

func newRootSet(lists ...[]string) rootSet {
	var out rootSet
	for _, l := range lists {
		for _, r := range l {
			if !filepath.IsAbs(r) {
				continue
			}
			for _, f := range resolvedForms(filepath.Clean(r)) {
				if !slices.Contains(out, f) {
					out = append(out, f)
				}
			}
		}
	}
	return out
}

func (rs rootSet) has(path string) bool {
	for _, r := range rs {
		if within(path, r) {
			return true
		}
	}
	return false
}

// kernelRoots are never a configuration's business: a device can hang a
// check (/dev/zero) or grow it without bound (/dev/urandom), and /proc
// and /sys expose the host.
var kernelRoots = []string{"/dev", "/proc", "/sys"}

func kernelPath(p string) bool {
	for _, r := range kernelRoots {
		if within(p, r) {
			return true
		}
	}
	return false
}
