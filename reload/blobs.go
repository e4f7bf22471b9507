package reload

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// errCorruptBlob: a history blob's content does not match its name.
var errCorruptBlob = errors.New("content does not match its sha256")

// putBlob keeps data in history/blobs under its sha256. A blob already
// there is kept only when its content matches its name; a corrupt one
// (a torn write, a disk error) is rewritten. What was written is read
// back and checked.
func (s store) putBlob(data []byte) (string, error) {
	sum := sha(data)
	if err := os.MkdirAll(s.blobDir(), 0o750); err != nil {
		return "", fmt.Errorf("history dir: %w", err)
	}
	if old, err := os.ReadFile(s.blobPath(sum)); err == nil && bytes.Equal(old, data) {
		return sum, nil
	}
	if _, err := writeAtomic(s.blobPath(sum), data, 0o640); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	if _, err := s.blob(sum); err != nil {
		return "", fmt.Errorf("snapshot: written, but: %w", err)
	}
	return sum, nil
}

// blob reads the blob sum, checked against its name.
func (s store) blob(sum string) ([]byte, error) {
	if sum == "" {
		return nil, fs.ErrNotExist
	}
	b, err := os.ReadFile(s.blobPath(sum))
	if err != nil {
		return nil, fmt.Errorf("history blob %s: %w", short(sum), err)
	}
	if sha(b) != sum {
		return nil, fmt.Errorf("history blob %s: %w", short(sum), errCorruptBlob)
	}
	return b, nil
}

// BlobProblem is a history blob that cannot be used: corrupt (its content
// does not match its name) or missing while an entry or running.json
// references it.
type BlobProblem struct {
	SHA256 string `json:"sha256"`
	// Problem is "corrupt" or "missing".
	Problem string `json:"problem"`
	// Entries are the history entries (or running.json) that reference it.
	Entries []string `json:"entries"`
}

// BlobReport is `haguard history --verify`: how many blobs were read and
// checked, and the ones that cannot be used.
type BlobReport struct {
	Checked  int           `json:"checked"`
	Problems []BlobProblem `json:"problems"`
}

// VerifyHistory reads every blob in stateDir's history and checks it
// against its name, and checks that every blob an entry references is
// there.
func VerifyHistory(stateDir string) (BlobReport, error) {
	s := store{dir: stateDir}
	rep := BlobReport{Problems: []BlobProblem{}}
	es, err := s.entries()
	if err != nil && !isNotExist(err) {
		return rep, err
	}
	refs := map[string][]string{}
	ref := func(sum, id string) {
		if sum != "" && !slices.Contains(refs[sum], id) {
			refs[sum] = append(refs[sum], id)
		}
	}
	for _, e := range es {
		for _, c := range e.files() {
			ref(c.Restore, e.ID)
			ref(c.After, e.ID)
			ref(c.Replaced, e.ID)
		}
		for _, k := range e.Kept {
			ref(k.SHA256, e.ID)
		}
	}
	if r, err := s.running(); err == nil {
		for _, m := range r.Manifest {
			ref(m.SHA256, "running.json")
		}
	}
	seen := map[string]bool{}
	ds, err := os.ReadDir(s.blobDir())
	if err != nil && !isNotExist(err) {
		return rep, fmt.Errorf("history blobs: %w", err)
	}
	for _, d := range ds {
		if !d.Type().IsRegular() || len(d.Name()) != 64 {
			continue // a temp file of a write in progress, or not ours
		}
		seen[d.Name()] = true
		rep.Checked++
		if _, err := s.blob(d.Name()); err != nil {
			ids := refs[d.Name()]
			if ids == nil {
				ids = []string{}
			}
			rep.Problems = append(rep.Problems, BlobProblem{SHA256: d.Name(), Problem: "corrupt", Entries: ids})
		}
	}
	for sum, ids := range refs {
		if !seen[sum] {
			rep.Problems = append(rep.Problems, BlobProblem{SHA256: sum, Problem: "missing", Entries: ids})
		}
	}
	slices.SortFunc(rep.Problems, func(a, b BlobProblem) int {
		return strings.Compare(a.Problem+a.SHA256, b.Problem+b.SHA256)
	})
	return rep, nil
}
