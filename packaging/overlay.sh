#!/bin/sh
# Runs INSIDE a test-bed sandbox (its own mount namespace) before the
# package test installs the .deb there. The sandbox shares the host's /usr,
# /etc and /var; dpkg writes to all three. This puts an overlayfs over each,
# with the upper layers on a tmpfs in the box's private /run, so that
# whatever dpkg, the maintainer scripts, man-db and haguard write stays in
# the box and vanishes with it. The host's files are the read-only lower
# layers.
#
# Mounts below an overlaid directory (the box's private /var/tmp, ...) would
# be hidden by the overlay; they are moved aside first and moved back on
# top. $KEEP (a directory under /var shared with the host, the test bed's
# run directory) is bind-mounted onto itself first so that it is moved
# back the same way and stays shared.
set -eu

O=/run/haguard-pkgtest
mount --make-rprivate /
mkdir -p "$O"
mount -t tmpfs -o mode=0755 haguard-pkgtest "$O"

if [ -n "${KEEP:-}" ]; then
	mount --bind "$KEEP" "$KEEP"
fi

i=0
for d in /usr /etc /var; do
	n=$(basename "$d")
	mkdir -p "$O/up/$n" "$O/work/$n"
	# Direct submounts of $d (deepest last; moving a mount moves its children).
	subs=$(awk -v d="$d/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -u)
	top=""
	for m in $subs; do
		inner=0
		for p in $top; do
			case "$m" in "$p"/*) inner=1 ;; esac
		done
		[ "$inner" = 1 ] || top="$top $m"
	done
	stash=""
	for m in $top; do
		i=$((i + 1))
		mkdir -p "$O/stash/$i"
		mount --move "$m" "$O/stash/$i"
		stash="$stash $i:$m"
	done
	mount -t overlay "haguard-pkgtest-$n" -o "lowerdir=$d,upperdir=$O/up/$n,workdir=$O/work/$n" "$d"
	for e in $stash; do
		mount --move "$O/stash/${e%%:*}" "${e#*:}"
	done
done
echo "overlaid /usr /etc /var (upper layers in $O)"
