package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// cgroup2Magic is CGROUP2_SUPER_MAGIC from statfs(2).
const cgroup2Magic = 0x63677270

// cgroup2Mount finds the host's cgroup2 hierarchy: /sys/fs/cgroup on a
// unified host, /sys/fs/cgroup/unified on a hybrid one (like this CI image,
// where PID 1 is not systemd and the v1 controllers sit next to it).
func cgroup2Mount() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st syscall.Statfs_t
		if err := syscall.Statfs(p, &st); err == nil && st.Type == cgroup2Magic {
			return p, nil
		}
	}
	return "", errors.New("no cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

// cgroupBase is the parent of every sandbox's cgroup subtree.
func cgroupBase() (string, error) {
	m, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	return filepath.Join(m, "haguard-testbed"), nil
}

// newCgroup creates the subtree a sandbox lives in. The box's systemd sees
// it as its root ("/"), because it unshares its cgroup namespace from here.
func newCgroup(id string) (string, error) {
	base, err := cgroupBase()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(base, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	return dir, nil
}

// cgroupPIDs lists every process in the subtree at dir.
func cgroupPIDs(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// removeCgroup kills whatever is still inside the subtree (cgroup.kill) and
// removes it, deepest directories first. It gives up after a bounded wait.
func removeCgroup(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	var last error
	for range 200 {
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		last = nil
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				last = err
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w (pids left: %v)", dir, last, cgroupPIDs(dir))
}

// reapCgroups removes the cgroup subtrees of sandboxes whose test process is
// gone (a crashed run), killing what is left in them.
func reapCgroups(logf func(format string, args ...any)) {
	base, err := cgroupBase()
	if err != nil {
		return
	}
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		name, _, _ := strings.Cut(e.Name(), ".")
		own, ok := parseOwner(name)
		if !ok || own.alive() {
			continue
		}
		dir := filepath.Join(base, e.Name())
		if err := removeCgroup(dir); err != nil {
			logf("testbed: leftover %v", err)
		} else {
			logf("testbed: reaped leftover sandbox cgroup %s", dir)
		}
	}
}
