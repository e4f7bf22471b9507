// Package testbed boots the real parts haguard's tests run against: the
// real haproxy binary, a real systemd in a private PID+mount namespace
// running Debian's haproxy.service, and real MariaDB/Galera on loopback.
package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// Tier is a test tier (docs/testing.md).
type Tier string

// The tiers. Unit tests need no call to Require.
const (
	// TierBinary needs the real haproxy binary.
	TierBinary Tier = "binary"
	// TierSystem needs root, systemd, haproxy.service, MariaDB and Galera.
	TierSystem Tier = "system"
)

// Require fails t with a clear message when the parts of tier are missing.
// A tier is skipped only on purpose: with -short, or when HAGUARD_TIERS
// (a comma-separated list: unit,binary,system) leaves it out. Under
// `make test` neither is set, so a missing part is a failure, never a
// silent skip.
func Require(t testing.TB, tier Tier) {
	t.Helper()
	if testing.Short() {
		t.Skipf("tier %q skipped: -short runs unit tests only", tier)
	}
	if v := os.Getenv("HAGUARD_TIERS"); v != "" && !contains(strings.Split(v, ","), string(tier)) {
		t.Skipf("tier %q skipped: HAGUARD_TIERS=%s", tier, v)
	}
	if missing := Missing(tier); len(missing) > 0 {
		t.Fatalf("tier %q cannot run; missing: %s (run `make deps` or `make test`, which installs them)",
			tier, strings.Join(missing, "; "))
	}
}

// Missing lists what tier needs and this machine lacks.
func Missing(tier Tier) []string {
	var missing []string
	need := func(path, why string) {
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", path, why))
		}
	}
	needCmd := func(name, pkg string) {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, fmt.Sprintf("%s in PATH (Debian package %s)", name, pkg))
		}
	}
	need(HAProxyBin(), haproxyOrigin(HAProxyBin()))
	if tier == TierSystem {
		if os.Geteuid() != 0 {
			missing = append(missing, "root (namespaces and systemd need it)")
		}
		need("/lib/systemd/systemd", "Debian package systemd")
		need(HAProxyUnit(), haproxyOrigin(HAProxyUnit()))
		if why := buildMismatch(); why != "" {
			missing = append(missing, why)
		}
		if why := boxHidden(HAProxyBin()); why != "" {
			missing = append(missing, why)
		}
		need("/usr/bin/dbus-daemon", "Debian package dbus")
		need("/usr/sbin/mariadbd", "Debian package mariadb-server")
		need("/usr/lib/galera/libgalera_smm.so", "Debian package galera-4")
		needCmd("unshare", "util-linux")
		needCmd("nsenter", "util-linux")
		needCmd("rsync", "rsync")
		needCmd("socat", "socat")
		needCmd("ip", "iproute2")
		needCmd("setpriv", "util-linux")
		if m, err := cgroup2Mount(); err != nil {
			missing = append(missing, "a cgroup2 hierarchy (the sandbox runs systemd in a cgroup2 subtree of its own)")
		} else if err := syscall.Access(m, 2 /* W_OK */); err != nil {
			missing = append(missing, fmt.Sprintf("write access to %s (a privileged machine or container)", m))
		}
	}
	return missing
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.TrimSpace(v) == s {
			return true
		}
	}
	return false
}
