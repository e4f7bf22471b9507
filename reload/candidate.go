package reload

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// candidate is what a run installs: the new content of each path it
// changes, nil for a file it deletes.
type candidate map[string][]byte

// Bounds on a candidate directory: a config set is a few files of a few
// KiB to a few MiB (certificates, maps).
const (
	maxCandidateFiles = 4096
	maxCandidateBytes = 256 << 20
)

// ErrCandidate marks a candidate that cannot be installed as given (a path
// outside the set, a symlink, too large): nothing was touched.
var ErrCandidate = errors.New("bad candidate")

// roots are the places a candidate may write: each -f file, each -f
// directory (and what is below it), and the directory of each -f file
// (where its maps and certificates usually live).
func (t *txn) roots() []string {
	var out []string
	for _, a := range t.settings.Files {
		out = append(out, a)
		if st, err := os.Stat(a); err != nil || !st.IsDir() {
			out = append(out, filepath.Dir(a))
		}
	}
	return out
}

func within(path string, roots []string) bool {
	for _, r := range roots {
		if path == r || strings.HasPrefix(path, strings.TrimSuffix(r, "/")+"/") {
			return true
		}
	}
	return false
}

// loadCandidate reads opt.Candidate. A file replaces the target (the main
// config file). A directory mirrors the set by absolute path
// (DIR/etc/haproxy/haproxy.cfg is /etc/haproxy/haproxy.cfg): each regular
// file in it replaces or adds that file; a -f directory present in it is
// the whole new content of that directory's *.cfg files (one missing from
// the candidate is deleted). Paths outside the set's roots, symlinks and
// special files are refused.
func (t *txn) loadCandidate() (candidate, error) {
	src := t.opt.Candidate
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("read candidate: %w", err)
	}
	if !st.IsDir() {
		if t.settings.Target == "" {
			return nil, fmt.Errorf("%w: the unit loads only directories (-f %s): give --candidate DIR, a tree that mirrors them",
				ErrCandidate, strings.Join(t.settings.Files, " -f "))
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("read candidate: %w", err)
		}
		return candidate{t.settings.Target: b}, nil
	}
	return loadCandidateDir(src, t.settings.Files, t.roots())
}

func loadCandidateDir(dir string, args, roots []string) (candidate, error) {
	c := candidate{}
	total := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		real := filepath.Join("/", rel)
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%w: %s is not a regular file (symlinks and special files are refused)", ErrCandidate, real)
		case !within(real, roots):
			return fmt.Errorf("%w: %s is outside the config set (haproxy's -f files and directories, and the directories of its -f files: %s)",
				ErrCandidate, real, strings.Join(roots, ", "))
		}
		if len(c) >= maxCandidateFiles {
			return fmt.Errorf("%w: more than %d files", ErrCandidate, maxCandidateFiles)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if total += len(b); total > maxCandidateBytes {
			return fmt.Errorf("%w: larger than %d bytes", ErrCandidate, maxCandidateBytes)
		}
		c[real] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read candidate %s: %w", dir, err)
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("%w: %s holds no file (it mirrors the set by absolute path: %s/etc/haproxy/haproxy.cfg)", ErrCandidate, dir, dir)
	}
	// A -f directory the candidate carries is its whole new content.
	for _, a := range args {
		if st, err := os.Stat(filepath.Join(dir, a)); err != nil || !st.IsDir() {
			continue
		}
		ents, _ := os.ReadDir(a)
		for _, e := range ents {
			p := filepath.Join(a, e.Name())
			if _, ok := c[p]; !ok && !e.IsDir() && strings.HasSuffix(e.Name(), ".cfg") {
				c[p] = nil
			}
		}
	}
	return c, nil
}

// paths lists the candidate's paths, sorted.
func (c candidate) paths() []string {
	out := make([]string, 0, len(c))
	for p := range c {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
