package reload

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeAtomic puts data at path so that a reader sees the old bytes or the
// new ones, never a mix, and a crash leaves one of the two: a temp file in
// the same directory, fsync, the old file's mode and owner, rename, fsync
// of the directory. It reports false when path already holds data (nothing
// is written then).
func writeAtomic(path string, data []byte, defMode fs.FileMode) (bool, error) {
	return writeFile(path, data, defMode, true)
}

// writeFile is writeAtomic; with durable false it skips both fsyncs: the
// rename is still atomic for readers and survives a killed process (the
// page cache has it), only not a power loss. The journal's informative
// stage updates use it; everything recovery depends on is durable.
func writeFile(path string, data []byte, defMode fs.FileMode, durable bool) (bool, error) {
	// A symlink (config management keeping the real file elsewhere) stays
	// one: the file it points to is replaced, from a temp file in its own
	// directory, since a rename cannot cross filesystems.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	mode := defMode
	uid, gid := -1, -1
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempSuffix+"*")
	if err != nil {
		return false, fmt.Errorf("temp file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return false, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return false, fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if uid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			return false, fmt.Errorf("chown %s: %w", tmp.Name(), err)
		}
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			return false, fmt.Errorf("fsync %s: %w", tmp.Name(), err)
		}
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("rename onto %s: %w", path, err)
	}
	done = true
	if durable {
		if err := syncDir(dir); err != nil {
			return true, err
		}
	}
	return true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// tempSuffix marks writeFile's temp files: .<name>.haguard-<random>.
const tempSuffix = ".haguard-"

// removeStaleTemps removes the temp files a killed writeFile left in dir:
// those of name, or with name "", of any file. It must run under the lock
// (no writeFile is running then). It returns what it removed.
func removeStaleTemps(dir, name string) []string {
	base := "*"
	if name != "" {
		base = globEscape(name)
	}
	found, _ := filepath.Glob(filepath.Join(globEscape(dir), "."+base+tempSuffix+"*"))
	var removed []string
	for _, p := range found {
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() && os.Remove(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
