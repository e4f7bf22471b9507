#!/usr/bin/env bash
# The suite of `make test`, in two passes (docs/testing.md):
#   1. every tier against Debian 12's haproxy 2.6 (/usr/sbin/haproxy, its unit);
#   2. the binary and system tiers against Debian 13's haproxy 3.0, built
#      from Debian's source package by scripts/haproxy30.sh (cached), run by
#      Debian 13's unit in the sandbox.
# Both passes run even when the first fails, so one run shows both verdicts.
# Each pass says which haproxy it tested and how long it took; a 3.0 build
# that fails fails the run and names its step.
#
# Run from `make test` (after deps and lint), which puts Go in PATH.
set -uo pipefail
cd "$(dirname "$0")/.."

gotest=(go test -race -count=1 -timeout 45m ./...)
tiers30=binary,system # the unit tier does not touch haproxy: it runs once
summary=()
failed=0

version_of() { "$1" -v 2>/dev/null | head -1 | sed -e 's/^HAProxy version //' -e 's/ - https.*//'; }
elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# pass NAME TIERS BIN UNIT: go test with that haproxy (BIN and UNIT empty:
# Debian 12's package).
pass() {
	local name=$1 tiers=$2 bin=$3 unit=$4
	local v start rc=0
	v=$(version_of "${bin:-/usr/sbin/haproxy}")
	echo "=== $name: haproxy ${v:-(unknown: ${bin:-/usr/sbin/haproxy} -v failed)} (${bin:-/usr/sbin/haproxy}), tiers $tiers"
	start=$SECONDS
	# The fault harness runs its reduced set here (reload/faults_harness_system_test.go);
	# `make test-faults` runs the full one.
	local envs=(-u HAGUARD_HAPROXY_BIN -u HAGUARD_HAPROXY_UNIT HAGUARD_TIERS="$tiers" HAGUARD_FAULTS="${HAGUARD_FAULTS:-reduced}")
	[ -z "$bin" ] || envs+=(HAGUARD_HAPROXY_BIN="$bin")
	[ -z "$unit" ] || envs+=(HAGUARD_HAPROXY_UNIT="$unit")
	env "${envs[@]}" "${gotest[@]}" || rc=$?
	local took
	took=$(elapsed $((SECONDS - start)))
	if [ $rc -eq 0 ]; then
		summary+=("$name: haproxy $v, tiers $tiers: ok in $took")
	else
		summary+=("$name: haproxy $v, tiers $tiers: FAILED (go test exit $rc) after $took")
		failed=1
	fi
	echo "=== $name: haproxy $v: $([ $rc -eq 0 ] && echo ok || echo FAILED) in $took"
}

run_start=$SECONDS

# Build (or find in the cache) 3.0 first: a build that fails is said at
# once, and pass 1 still runs.
echo "=== haproxy 3.0: scripts/haproxy30.sh (Debian 13's source package, cached by version)"
start=$SECONDS
log=$(mktemp)
outf=$(mktemp)
bin30=
# stdout (the binary's path) to a file, stderr on to the terminal and a log.
./scripts/haproxy30.sh 2>&1 >"$outf" | tee "$log" >&2
if [ "${PIPESTATUS[0]}" -eq 0 ] && bin30=$(tail -n 1 "$outf") && [ -x "$bin30" ]; then
	src=$(sed -n 's/^source: //p' "$(dirname "$bin30")/build-info" 2>/dev/null)
	summary+=("haproxy 3.0 build: $bin30 ($(elapsed $((SECONDS - start)))): ${src:-source unknown}")
else
	bin30=
	why=$(grep -m1 'FAILED at step' "$log" || echo "scripts/haproxy30.sh failed")
	summary+=("haproxy 3.0 build: $why")
	failed=1
fi
rm -f "$log" "$outf"

pass "pass 1/2 (Debian 12)" unit,binary,system "" ""

if [ -n "$bin30" ]; then
	pass "pass 2/2 (Debian 13)" "$tiers30" "$bin30" "$(dirname "$bin30")/haproxy.service"
else
	summary+=("pass 2/2 (Debian 13): NOT RUN: the haproxy 3.0 build failed")
fi

echo
echo "=== make test summary ($(elapsed $((SECONDS - run_start))) in all)"
printf '    %s\n' "${summary[@]}"
if [ $failed -ne 0 ]; then
	echo "=== make test: FAILED"
	exit 1
fi
echo "=== make test: ok"
