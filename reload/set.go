package reload

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// A config set is every file haproxy loads at start: each -f file, each
// *.cfg of a -f directory (in haproxy's order), and the files the config
// reads (maps, ACL files, certificates, Lua, error files...). It is
// hashed, snapshotted, installed and rolled back as one whole.

// ManifestEntry is one member of a set and its content's sha256 ("" when
// the file is absent).
type ManifestEntry struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// Ref marks a file the config loads (not a -f file).
	Ref bool `json:"ref,omitempty"`
}

// Manifest is a set as it was at one moment, sorted by path.
type Manifest []ManifestEntry

// Identity is the set's one name: the If-Match tag, drift and history
// compare it. A set of one file is named by that file's sha256 (so a
// single haproxy.cfg keeps the identity it always had); a larger one by
// the sha256 of its manifest.
func (m Manifest) Identity() string {
	if len(m) == 1 && !m[0].Ref {
		return m[0].SHA256
	}
	h := sha256.New()
	for _, e := range m {
		fmt.Fprintf(h, "%s\x00%s\n", e.Path, e.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Get is the sha256 the manifest has for path.
func (m Manifest) Get(path string) (sum string, ok bool) {
	i, ok := slices.BinarySearchFunc(m, path, func(e ManifestEntry, p string) int { return strings.Compare(e.Path, p) })
	if !ok {
		return "", false
	}
	return m[i].SHA256, true
}

// Paths lists the manifest's paths.
func (m Manifest) Paths() []string {
	out := make([]string, len(m))
	for i, e := range m {
		out[i] = e.Path
	}
	return out
}

// Diff lists the paths whose content differs between m and o (present in
// one only, or with another sha256).
func (m Manifest) Diff(o Manifest) []string {
	seen := map[string]string{}
	for _, e := range m {
		seen[e.Path] = e.SHA256
	}
	var out []string
	for _, e := range o {
		if s, ok := seen[e.Path]; !ok || s != e.SHA256 {
			out = append(out, e.Path)
		}
		delete(seen, e.Path)
	}
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// manifestOf hashes what the files hold now; refs are marked Ref.
func manifestOf(configs, refs []string, read func(string) ([]byte, error)) Manifest {
	isRef := map[string]bool{}
	for _, r := range refs {
		isRef[r] = true
	}
	for _, c := range configs {
		delete(isRef, c)
	}
	paths := append(slices.Clone(configs), refs...)
	slices.Sort(paths)
	paths = slices.Compact(paths)
	m := make(Manifest, 0, len(paths))
	for _, p := range paths {
		e := ManifestEntry{Path: p, Ref: isRef[p]}
		if b, err := read(p); err == nil {
			e.SHA256 = sha(b)
		}
		m = append(m, e)
	}
	return m
}

// expandFiles lists the config files of haproxy's -f arguments in the
// order haproxy loads them: a file as is, a directory as its *.cfg files
// in lexical (C) order. cand, the candidate's files, adds the new *.cfg
// files of a directory and drops the ones it deletes (nil content).
func expandFiles(args []string, cand map[string][]byte) []string {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		isDir := err == nil && st.IsDir() || err != nil && hasUnder(cand, a)
		if !isDir {
			out = append(out, a)
			continue
		}
		names := map[string]bool{}
		if ents, err := os.ReadDir(a); err == nil {
			for _, e := range ents {
				if !e.IsDir() && strings.HasSuffix(e.Name(), ".cfg") {
					names[filepath.Join(a, e.Name())] = true
				}
			}
		}
		for p, b := range cand {
			if filepath.Dir(p) == a && strings.HasSuffix(p, ".cfg") {
				names[p] = b != nil
			}
		}
		var files []string
		for p, keep := range names {
			if keep {
				files = append(files, p)
			}
		}
		sort.Strings(files)
		out = append(out, files...)
	}
	return out
}

func hasUnder(cand map[string][]byte, dir string) bool {
	for p := range cand {
		if filepath.Dir(p) == dir {
			return true
		}
	}
	return false
}

// FileChange is one file a transaction changes, as history blobs: Restore
// is what a rollback puts back, After what the install wrote, Replaced
// what the disk held when that was neither (an edit made without a
// reload, kept so that it is not lost). "" is an absent file: the install
// deleted it, or a rollback removes it.
type FileChange struct {
	Path     string `json:"path"`
	Restore  string `json:"restore_sha256"`
	After    string `json:"after_sha256"`
	Replaced string `json:"replaced_sha256,omitempty"`
}
