package testbed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// installFlags are the mariadb-install-db options of every test server.
var installFlags = []string{"--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"}

// installCnf holds the my.cnf lines that shape a fresh data dir. Servers
// run with these same values (myCnf), so the copy fits them.
var installCnf = []string{
	"innodb_buffer_pool_size=32M",
	"innodb_log_file_size=16M",
}

// installDataDir fills dir (which must not exist yet, or be empty) with a
// fresh MariaDB data dir. mariadb-install-db is I/O-bound and takes
// 0.6 s on an idle machine but 4 s and more while other suites run; so it
// runs once per mariadbd build and set of flags, into a cache under
// StateRoot()/cache, and every server gets a copy (tens of milliseconds).
func installDataDir(dir string) error {
	tmpl, err := dataDirTemplate()
	if err != nil {
		return err
	}
	if err := os.CopyFS(dir, os.DirFS(tmpl)); err != nil {
		return fmt.Errorf("copy data dir template %s: %w", tmpl, err)
	}
	return nil
}

// dataDirTemplate returns the cached fresh data dir for this mariadbd,
// building it first if needed. Concurrent builders (other test processes)
// each build into a private dir and rename it into place; the first wins.
func dataDirTemplate() (string, error) {
	key, err := templateKey()
	if err != nil {
		return "", err
	}
	final := filepath.Join(StateRoot(), "cache", "mariadb-datadir-"+key)
	if _, err := os.Stat(filepath.Join(final, "mysql")); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", err
	}
	build, err := os.MkdirTemp(filepath.Dir(final), ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(build) // a no-op once renamed
	data := filepath.Join(build, "data")
	cnf := filepath.Join(build, "my.cnf")
	text := strings.Join(append([]string{"[mysqld]", "datadir=" + data, "skip-networking",
		"socket=" + filepath.Join(build, "s.sock")}, installCnf...), "\n") + "\n"
	if err := os.WriteFile(cnf, []byte(text), 0o644); err != nil {
		return "", err
	}
	out, err := exec.Command("mariadb-install-db", append([]string{"--defaults-file=" + cnf}, installFlags...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb-install-db: %w\n%s", err, lastLines(string(out), 20))
	}
	if err := os.Rename(data, final); err != nil {
		if _, statErr := os.Stat(filepath.Join(final, "mysql")); statErr == nil {
			return final, nil // another process won the race
		}
		return "", fmt.Errorf("install data dir template: %w", err)
	}
	return final, nil
}

// templateKey names a template by what makes one: the mariadbd build (its
// size and modification time change with every package upgrade), the
// install flags and the shaping my.cnf lines.
func templateKey() (string, error) {
	fi, err := os.Stat("/usr/sbin/mariadbd")
	if err != nil {
		return "", fmt.Errorf("mariadbd: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%d %d\n%s\n%s\n", fi.Size(), fi.ModTime().UnixNano(),
		strings.Join(installFlags, " "), strings.Join(installCnf, " "))
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
