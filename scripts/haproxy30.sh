#!/usr/bin/env bash
# Builds Debian 13's haproxy 3.0 from Debian's source package on Debian 12,
# and keeps the result in a cache keyed by the source version, so a second
# run on the same machine only checks the version (a few seconds).
#
# Prints the path of the binary as the last line of stdout; everything else
# goes to stderr. The unit Debian 13 ships is written beside it
# (haproxy.service, its ExecStart pointing at this binary): testbed runs it
# when HAGUARD_HAPROXY_UNIT names it (docs/testing.md).
#
#   HAGUARD_HAPROXY30_CACHE  cache root (default /var/cache/haguard/haproxy)
#   HAGUARD_HAPROXY30_SUITE  Debian suite of the source (default trixie)
#   HAGUARD_HAPROXY30_SOURCES  deb-src lines to use instead of the suite's
#                            on deb.debian.org (a local mirror)
#
# Every failure says which step failed and exits 1.
set -euo pipefail

cache=${HAGUARD_HAPROXY30_CACHE:-/var/cache/haguard/haproxy}
suite=${HAGUARD_HAPROXY30_SUITE:-trixie}
mirror=http://deb.debian.org

say() { echo "haproxy30: $*" >&2; }
step=
fail() {
	echo "haproxy30: FAILED at step '$step': $*" >&2
	step=
	exit 1
}
# A command that fails under set -e names its step too.
trap 'rc=$?; [ $rc -eq 0 ] || [ -z "$step" ] || echo "haproxy30: FAILED at step '"'"'$step'"'"' (exit $rc)" >&2' EXIT

# How the binary is built. Changing it rebuilds every cached version: the
# recipe is stored beside each binary and compared.
#
# Debian 13's debian/rules builds with TARGET=linux-glibc USE_SYSTEMD=1
# USE_OPENSSL=1 USE_QUIC=1 USE_QUIC_OPENSSL_COMPAT=1 USE_PCRE2=1
# USE_PCRE2_JIT=1 USE_SLZ=1 USE_LUA=1 USE_PROMEX=1 USE_OT=1 and links
# jemalloc. We keep all of it but two, each irrelevant to what haguard
# tests: USE_OT (OpenTracing, deprecated upstream) and jemalloc (the
# allocator). Everything comes from Debian 12's archive: libssl-dev (3.0),
# libpcre2-dev, liblua5.4-dev. 3.0's USE_SYSTEMD is haproxy's own
# sd_notify (src/systemd.c), so Type=notify works without libsystemd.
recipe="TARGET=linux-glibc USE_SYSTEMD=1 USE_OPENSSL=1 USE_QUIC=1 USE_QUIC_OPENSSL_COMPAT=1 USE_PCRE2=1 USE_PCRE2_JIT=1 USE_SLZ=1 USE_LUA=1 LUA_INC=/usr/include/lua5.4 USE_PROMEX=1 IGNOREGIT=true"

step="prepare the cache $cache"
mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$cache/apt/sources.list.d" "$cache/src"
exec 9>"$cache/lock"
flock 9 || fail "cannot lock $cache/lock"

# A private apt state: a deb-src line for the suite, its own lists and
# cache. The host's /etc/apt is never changed, so no other apt-get on the
# machine sees trixie.
if [ -n "${HAGUARD_HAPROXY30_SOURCES:-}" ]; then
	printf '%s\n' "$HAGUARD_HAPROXY30_SOURCES" >"$cache/apt/sources.list"
else
	cat >"$cache/apt/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror/debian $suite main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror/debian $suite-updates main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror/debian-security $suite-security main
EOF
fi
apt_opts=(
	-o "Dir::Etc::SourceList=$cache/apt/sources.list"
	-o "Dir::Etc::SourceParts=$cache/apt/sources.list.d"
	-o "Dir::State::Lists=$cache/apt/lists"
	-o "Dir::Cache=$cache/apt"
	-o "APT::Sandbox::User=root"
)

step="apt-get update (deb-src $suite)"
apt-get "${apt_opts[@]}" update -qq >&2 || {
	say "apt-get update failed; once more in 10 s"
	sleep 10
	apt-get "${apt_opts[@]}" update -qq >&2
} || fail "apt-get update with a deb-src line for $suite failed twice"

step="read haproxy's source versions from the $suite index"
mapfile -t versions < <(apt-cache "${apt_opts[@]}" showsrc haproxy 2>/dev/null |
	sed -n 's/^Version: //p' | sort -Vr -u)
((${#versions[@]})) || fail "no haproxy source package in $suite's index"
say "the source index ($suite) has haproxy ${versions[*]}"

# cached KEY: true when $cache/KEY holds a working binary built by this recipe.
cached() {
	[ -x "$cache/$1/haproxy" ] && [ "$(cat "$cache/$1/recipe" 2>/dev/null)" = "$recipe" ] &&
		"$cache/$1/haproxy" -v >/dev/null 2>&1
}
done_with() {
	say "using $cache/$1/haproxy: $("$cache/$1/haproxy" -v | head -1)"
	step=
	echo "$cache/$1/haproxy"
	exit 0
}

newest=${versions[0]}
cached "$newest" && done_with "$newest"

# The full source package (Debian's patches applied by dpkg-source), newest
# version first. The mirror can lag its own index (seen here: the index
# named 3.0.11-1+deb13u4 and u5 while only the orig tarball was served), so
# each version the index names is tried in turn.
key=
for v in "${versions[@]}"; do
	cached "$v" && done_with "$v"
	step="apt-get source haproxy=$v"
	work="$cache/src/$v"
	rm -rf "$work" && mkdir -p "$work"
	# The .dsc first (a few kB): a mirror that lacks it costs no tarball.
	if probe=$(cd "$work" && apt-get "${apt_opts[@]}" source -qq --dsc-only haproxy="$v" 2>&1) &&
		(cd "$work" && apt-get "${apt_opts[@]}" source -qq haproxy="$v" >&2); then
		key=$v
		break
	fi
	rm -rf "$work"
	say "apt-get source haproxy=$v failed: $(grep -m1 '^E:' <<<"$probe" || echo "see above")"
done

upstream=${newest%%-*}
if [ -z "$key" ]; then
	# Last resort, said loudly: Debian's orig tarball alone (the upstream
	# release, hash-checked by apt against the index), without Debian's
	# patches (security fixes and the unit's Documentation/After lines).
	key="$upstream-orig"
	cached "$key" && {
		say "WARNING: no full haproxy source package of $suite is served; using the earlier build of Debian's orig tarball"
		done_with "$key"
	}
	step="apt-get source --tar-only haproxy=$newest"
	work="$cache/src/$key"
	rm -rf "$work" && mkdir -p "$work"
	(cd "$work" && apt-get "${apt_opts[@]}" source -qq --tar-only haproxy="$newest" >&2) ||
		fail "not even the orig tarball of haproxy $newest could be fetched"
	step="unpack haproxy_$upstream.orig.tar.gz"
	(cd "$work" && tar xzf "haproxy_$upstream.orig.tar.gz") || fail "cannot unpack the orig tarball"
	say "WARNING: no full haproxy source package of $suite is served; building Debian's orig tarball ($upstream) without Debian's patches"
fi

step="find the unpacked source of $key"
srcdir=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'haproxy-*' | head -1)
[ -n "$srcdir" ] && [ -f "$srcdir/Makefile" ] || fail "no haproxy-*/Makefile under $work"

step="check the build dependencies"
for f in /usr/include/openssl/ssl.h /usr/include/pcre2.h /usr/include/lua5.4/lua.h; do
	[ -e "$f" ] || fail "$f is missing (run ./scripts/deps.sh, which installs libssl-dev libpcre2-dev liblua5.4-dev)"
done
command -v cc >/dev/null || fail "no C compiler (Debian package build-essential)"

# Debian's hardening flags, as debian/rules asks dpkg-buildflags for them,
# and Debian's version string when the diff was applied.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cflags="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
ldflags="$(dpkg-buildflags --get LDFLAGS) -Wl,--as-needed"
verargs=()
if [ "$key" != "$upstream-orig" ]; then
	verargs=(VERSION="$upstream" SUBVERS="-${key#*-}")
fi

step="make haproxy $key"
say "building haproxy $key in $srcdir (a few minutes; log: $work/build.log)"
start=$SECONDS
# shellcheck disable=SC2086 # the recipe is a list of make variables
if ! make -C "$srcdir" -j"$(nproc)" $recipe "${verargs[@]}" CFLAGS="$cflags" LDFLAGS="$ldflags" >"$work/build.log" 2>&1; then
	tail -n 30 "$work/build.log" >&2
	fail "make failed (log: $work/build.log)"
fi
step="make the systemd unit of haproxy $key"
out="$cache/$key.tmp"
rm -rf "$out" && mkdir -p "$out"
make -C "$srcdir/admin/systemd" SBINDIR="$cache/$key" >>"$work/build.log" 2>&1 ||
	fail "make -C admin/systemd failed (log: $work/build.log)"
say "built in $((SECONDS - start)) s"

step="check the built binary"
"$srcdir/haproxy" -vv >"$work/haproxy-vv.txt" 2>&1 || fail "the built haproxy does not run: $(head -3 "$work/haproxy-vv.txt")"
for feat in +OPENSSL +LUA +SYSTEMD +PCRE2; do
	grep -q -- "$feat" "$work/haproxy-vv.txt" || fail "the built haproxy lacks $feat"
done

step="install into $cache/$key"
cp "$srcdir/haproxy" "$out/haproxy"
cp "$srcdir/admin/systemd/haproxy.service" "$out/haproxy.service"
cp "$work/haproxy-vv.txt" "$out/haproxy-vv.txt"
printf '%s\n' "$recipe" >"$out/recipe"
{
	echo "source: $([ "$key" = "$upstream-orig" ] && echo "Debian's orig tarball of haproxy $newest, without Debian's patches" || echo "Debian source package haproxy $key ($suite)")"
	echo "built: $(date -u +%FT%TZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "make: $recipe ${verargs[*]}"
} >"$out/build-info"
rm -rf "${cache:?}/$key"
mv "$out" "$cache/$key"
rm -rf "$work"
done_with "$key"
