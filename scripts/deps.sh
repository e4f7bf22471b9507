#!/usr/bin/env bash
# Installs what haguard's build, tests and demo need on a fresh Debian 12
# machine, and nothing when it is already there. Safe to run again.
set -euo pipefail

# `deps.sh go` ensures only Go (enough for `make build`); no argument
# ensures everything the tests and the demo need.
only_go=
[ "${1:-}" = go ] && only_go=1

# lintian and dpkg-dev (dpkg-parsechangelog) check the .deb (packaging/);
# hyperfine measures start-up (docs/benchmarks.md).
debs=(systemd haproxy mariadb-server mariadb-client galera-4 rsync socat dbus iproute2 procps curl man-db bash-completion prometheus ansible-core lintian dpkg-dev hyperfine)
# What scripts/haproxy30.sh needs to fetch and build Debian 13's haproxy 3.0
# from source (make test's second pass): apt-get source (dpkg-dev, xz-utils),
# a compiler, and the libraries of the build's USE_ flags.
debs+=(build-essential xz-utils debian-archive-keyring libssl-dev libpcre2-dev liblua5.4-dev)
missing=()
for p in "${debs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ -z "$only_go" ] && ((${#missing[@]})); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}"
	# Keep package scripts from starting haproxy or mariadb on the host:
	# the tests start their own, in a sandbox or on private ports.
	added_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		added_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ -z "$added_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

# Go: the machine's own (/usr/local/go), else Debian's golang-1.23 from
# bookworm-backports. Debian 12's main archive has only Go 1.19, which
# cannot fetch newer toolchains; 1.23 honours GOTOOLCHAIN=auto and fetches
# the version go.mod names through the Go module proxy.
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ] && [ ! -x /usr/lib/go-1.23/bin/go ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: no Go found, and installing it needs root" >&2
		exit 1
	fi
	echo "deps: installing Go 1.23 from bookworm-backports (it fetches go.mod's toolchain)"
	list=/etc/apt/sources.list.d/haguard-bookworm-backports.list
	[ -e "$list" ] || echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main' >"$list"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-1.23-go ca-certificates >/dev/null
fi
echo "deps: ok"
