#!/usr/bin/env bash
# Installs what haguard's build, tests and demo need on a fresh Debian 12
# machine, and nothing when it is already there. Safe to run again.
set -euo pipefail

debs=(systemd haproxy mariadb-server mariadb-client galera-4 rsync socat dbus iproute2 procps curl man-db bash-completion prometheus ansible-core)
missing=()
for p in "${debs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
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

# Go: the machine's own, or the one Debian ships plus the toolchain that
# go.mod names, fetched through the Go module proxy.
if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		echo "deps: Go is at /usr/local/go/bin; add it to PATH" >&2
	else
		echo "deps: installing Debian's golang (it fetches the go.mod toolchain)"
		apt-get install -y -qq golang-go >/dev/null
	fi
fi
echo "deps: ok"
