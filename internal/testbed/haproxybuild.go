package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Which haproxy the tests run. By default Debian 12's package:
// /usr/sbin/haproxy, run by /lib/systemd/system/haproxy.service. Two
// variables select another build (docs/testing.md):
//
//   - HAGUARD_HAPROXY_BIN: the binary for `haproxy -c`, the hand-started
//     masters and ghosts, and the unit's command lines;
//   - HAGUARD_HAPROXY_UNIT: the haproxy.service to run in the sandbox in
//     place of Debian 12's (scripts/haproxy30.sh writes Debian 13's, whose
//     ExecStart names its build). Without it, Debian 12's unit runs the
//     other binary with Debian 12's own command lines (a drop-in replaces
//     ExecStart and ExecReload).

// debianHAProxy is the binary Debian's haproxy package installs.
const debianHAProxy = "/usr/sbin/haproxy"

// debianUnit is the unit Debian's haproxy package installs.
const debianUnit = "/lib/systemd/system/haproxy.service"

// unitOverride is where the box finds a HAGUARD_HAPROXY_UNIT: systemd
// reads /run/systemd/system before /lib/systemd/system.
const unitOverride = "/run/systemd/system/haproxy.service"

// HAProxyBin is the haproxy binary tests use ($HAGUARD_HAPROXY_BIN or
// /usr/sbin/haproxy).
func HAProxyBin() string {
	if p := os.Getenv("HAGUARD_HAPROXY_BIN"); p != "" {
		return p
	}
	return debianHAProxy
}

// HAProxyUnit is the haproxy.service the sandbox runs ($HAGUARD_HAPROXY_UNIT
// or Debian 12's).
func HAProxyUnit() string {
	if p := os.Getenv("HAGUARD_HAPROXY_UNIT"); p != "" {
		return p
	}
	return debianUnit
}

// HAProxyVersion is the first line of `haproxy -v` of HAProxyBin, e.g.
// "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/".
func HAProxyVersion() (string, error) {
	out, err := exec.Command(HAProxyBin(), "-v").Output()
	if err != nil {
		return "", fmt.Errorf("%s -v: %w", HAProxyBin(), err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// haproxyDropIn is the drop-in's content for the managed config at cfg.
// With HAGUARD_HAPROXY_BIN set to another build and no HAGUARD_HAPROXY_UNIT,
// Debian 12's unit runs that binary with its own command lines, so the
// system tier runs against it.
func haproxyDropIn(cfg string) string {
	d := "[Service]\nEnvironment=CONFIG=" + cfg + "\n"
	if bin := HAProxyBin(); bin != debianHAProxy && HAProxyUnit() == debianUnit {
		d += "ExecStart=\nExecStart=" + bin + " -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS\n" +
			"ExecReload=\nExecReload=" + bin + " -Ws -f $CONFIG -c -q $EXTRAOPTS\nExecReload=/bin/kill -USR2 $MAINPID\n"
	}
	return d
}

// seedUnit copies a HAGUARD_HAPROXY_UNIT into the box's seed (its /run), so
// that the box's systemd loads it in place of Debian 12's.
func seedUnit(seed string) error {
	if HAProxyUnit() == debianUnit {
		return nil
	}
	b, err := os.ReadFile(HAProxyUnit())
	if err != nil {
		return fmt.Errorf("HAGUARD_HAPROXY_UNIT: %w", err)
	}
	dst := filepath.Join(seed, unitOverride)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// buildMismatch says why HAGUARD_HAPROXY_UNIT and HAGUARD_HAPROXY_BIN do not
// describe the same build ("" when they do): a unit whose ExecStart runs
// another binary would test one haproxy with the other's `-c`.
func buildMismatch() string {
	if HAProxyUnit() == debianUnit {
		return ""
	}
	b, err := os.ReadFile(HAProxyUnit())
	if err != nil {
		return "" // reported as missing
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart="); ok {
			exe, _, _ := strings.Cut(strings.TrimLeft(v, "-@:+!"), " ")
			if exe != HAProxyBin() {
				return fmt.Sprintf("HAGUARD_HAPROXY_UNIT %s runs %s, but HAGUARD_HAPROXY_BIN is %s (set both to the same build)",
					HAProxyUnit(), exe, HAProxyBin())
			}
			return ""
		}
	}
	return fmt.Sprintf("HAGUARD_HAPROXY_UNIT %s has no ExecStart=", HAProxyUnit())
}

// boxHidden says why path cannot be seen inside the sandbox ("" when it
// can): the box mounts its own /tmp, /run, /var/tmp and /dev, so a build
// there would not exist for the box's haproxy.service.
func boxHidden(path string) string {
	for _, root := range boxPrivateRoots {
		if path == root || strings.HasPrefix(path, root+"/") {
			return fmt.Sprintf("%s is under %s, which the sandbox mounts privately; put the build elsewhere (scripts/haproxy30.sh uses /var/cache/haguard/haproxy)", path, root)
		}
	}
	return ""
}

// haproxyOrigin says where a missing haproxy part comes from.
func haproxyOrigin(path string) string {
	switch path {
	case debianHAProxy, debianUnit:
		return "Debian package haproxy"
	case os.Getenv("HAGUARD_HAPROXY_BIN"):
		return "HAGUARD_HAPROXY_BIN; scripts/haproxy30.sh builds 3.0"
	default:
		return "HAGUARD_HAPROXY_UNIT; scripts/haproxy30.sh writes one beside its binary"
	}
}
