package testbed

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maskedUnits change state the box shares with the host (kernel settings,
// the clock, /etc, /var, the network, the audit log) or are pointless in a
// box. They are masked with /dev/null symlinks in the box's private
// /run/systemd/system; every *.timer is masked too.
var maskedUnits = []string{
	// kernel and host-wide settings
	"systemd-sysctl.service", "procps.service", "systemd-modules-load.service",
	"kmod.service", "kmod-static-nodes.service", "modprobe@.service",
	"systemd-binfmt.service", "proc-sys-fs-binfmt_misc.mount", "proc-sys-fs-binfmt_misc.automount",
	"sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
	"sys-fs-fuse-connections.mount", "dev-hugepages.mount",
	"systemd-journald-audit.socket", "systemd-rfkill.service", "systemd-rfkill.socket",
	"systemd-backlight@.service", "hwclock.service",
	// the clock
	"systemd-timesyncd.service", "systemd-time-wait-sync.service", "systemd-timedated.service",
	// /etc, /var and disks
	"systemd-sysusers.service", "systemd-random-seed.service", "systemd-update-utmp.service",
	"systemd-update-utmp-runlevel.service", "ldconfig.service", "systemd-hwdb-update.service",
	"systemd-journal-flush.service", "systemd-journal-catalog-update.service",
	"systemd-machine-id-commit.service", "systemd-update-done.service", "systemd-firstboot.service",
	"systemd-pstore.service", "systemd-remount-fs.service", "systemd-fsck-root.service",
	"systemd-repart.service", "systemd-sysext.service", "systemd-boot-system-token.service",
	"systemd-pcrphase.service", "systemd-pcrphase-sysinit.service", "systemd-pcrphase-initrd.service",
	"systemd-tmpfiles-clean.service", "systemd-tmpfiles-setup-dev.service",
	"cryptdisks.service", "cryptdisks-early.service", "quotaon.service", "systemd-quotacheck.service",
	"e2scrub_reap.service", "e2scrub_all.service", "fstrim.service", "dpkg-db-backup.service",
	"apt-daily.service", "apt-daily-upgrade.service", "man-db.service", "packagekit.service",
	"packagekit-offline-update.service",
	// the (shared) network
	"systemd-networkd.service", "systemd-networkd.socket", "systemd-networkd-wait-online.service",
	"systemd-network-generator.service", "systemd-resolved.service",
	// consoles and logins
	"getty.target", "getty@.service", "autovt@.service", "console-getty.service",
	"container-getty@.service", "serial-getty@.service", "getty-static.service",
	"systemd-logind.service", "systemd-user-sessions.service", "rc-local.service",
	// other daemons the host has installed; tests start what they need
	"mariadb.service", "mysql.service", "mysqld.service", "postgresql.service",
	"rsync.service",
}

// unitDirs are searched for *.timer units to mask.
var unitDirs = []string{"/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system"}

// tmpfilesDirs hold tmpfiles.d snippets; the box gets filtered copies of all
// of them in its /run/tmpfiles.d and an empty /etc/tmpfiles.d on top.
var tmpfilesDirs = []string{"/usr/lib/tmpfiles.d", "/lib/tmpfiles.d", "/etc/tmpfiles.d"}

// boxPrivateRoots are the only paths a box's systemd-tmpfiles may remove,
// truncate or rewrite: they are private mounts inside the box.
var boxPrivateRoots = []string{"/run", "/tmp", "/var/tmp", "/dev"}

// prepareSeed writes the files the launcher copies into the box's fresh
// /run before systemd starts: the unit masks and the filtered tmpfiles.d.
func prepareSeed(seed string) error {
	sys := filepath.Join(seed, "run", "systemd", "system")
	tmpf := filepath.Join(seed, "run", "tmpfiles.d")
	for _, d := range []string{sys, tmpf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	masks := map[string]bool{}
	for _, u := range maskedUnits {
		masks[u] = true
	}
	for _, d := range unitDirs {
		timers, _ := filepath.Glob(filepath.Join(d, "*.timer"))
		wanted, _ := filepath.Glob(filepath.Join(d, "*.wants", "*.timer"))
		for _, p := range append(timers, wanted...) {
			masks[filepath.Base(p)] = true
		}
	}
	for u := range masks {
		if err := os.Symlink("/dev/null", filepath.Join(sys, u)); err != nil {
			return fmt.Errorf("mask %s: %w", u, err)
		}
	}
	// Later directories in tmpfilesDirs win, as /etc wins over /usr/lib.
	files := map[string]string{}
	for _, d := range tmpfilesDirs {
		list, _ := filepath.Glob(filepath.Join(d, "*.conf"))
		for _, p := range list {
			files[filepath.Base(p)] = p
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(files[n])
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmpf, n), []byte(filterTmpfiles(string(b))), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// filterTmpfiles comments out the tmpfiles.d lines that could remove,
// truncate, rewrite or re-own host files: r/R/D/F/w/W/z/Z lines and any
// line with the "+" (replace) modifier, unless the path is under one of the
// box's private roots. Paths with specifiers (%t, …) are treated as outside.
func filterTmpfiles(src string) string {
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && dangerousTmpfiles(f[0]) && !underBoxRoots(f[1]) {
			out.WriteString("# haguard-testbed: filtered: ")
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.String()
}

func dangerousTmpfiles(typ string) bool {
	if strings.Contains(typ, "+") {
		return true
	}
	return strings.ContainsAny(typ[:1], "rRDFwWzZ")
}

func underBoxRoots(path string) bool {
	if strings.Contains(path, "%") {
		return false
	}
	clean := filepath.Clean(path)
	for _, r := range boxPrivateRoots {
		if clean == r || strings.HasPrefix(clean, r+"/") {
			return true
		}
	}
	return false
}

// launcherScript runs as PID 1 of the new PID, mount, UTS and IPC
// namespaces, already inside the sandbox's own cgroup2 subtree. It makes
// every mount private, puts private filesystems on everything systemd or
// its units would otherwise write on the host (above all /tmp), then
// unshares the cgroup namespace, mounts a fresh cgroup2 and execs systemd.
// $BOX_SEED, $BOX_CONSOLE and $BOX_HOSTNAME come from the environment.
const launcherScript = `set -eu
mount --make-rprivate /
mount -t proc -o nosuid,nodev,noexec proc /proc
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount --bind /sys /sys
mount -o remount,bind,ro /sys
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
for d in /var/log/journal /var/lib/systemd /var/lib/haproxy /etc/tmpfiles.d; do
	if [ -d "$d" ]; then mount -t tmpfs -o mode=755 tmpfs "$d"; fi
done
mkdir -p /var/lib/haproxy/dev
# a private /dev: journald's /dev/log must not appear on the host, and two
# boxes must not fight over it
mount -t tmpfs -o mode=755,nosuid tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
mkdir -m 755 /dev/pts /dev/mqueue /dev/net
mkdir -m 1777 /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
: > /dev/console
mount --bind "$BOX_CONSOLE" /dev/console
cp -a "$BOX_SEED"/run/. /run/
hostname "$BOX_HOSTNAME"
exec unshare --cgroup /bin/sh -c '
	mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
	exec env -i container=other PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/lib/systemd/systemd --system --unit=basic.target --log-target=console --show-status=no
'
`
