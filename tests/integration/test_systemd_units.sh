#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The systemd units as meson generates them (config/systemd/*.service.in):
# systemd-analyze verify finds no error or warning in them, and the command
# lines they run do what the units expect of them: the config check passes
# a good config and fails a broken one (ExecStartPre, ExecReload), and
# fulcrum-dp started before fulcrum-cp exits non-zero with one line, which
# Restart=on-failure turns into a retry. The binaries' install path is
# pointed at the build, nothing else in the units is changed. (No systemd
# runs as PID 1 here, so the units are not started.)
#
# usage: test_systemd_units.sh BUILD_DIR
set -u
BUILD=${1:?usage: test_systemd_units.sh BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FL_TEST_NAME=systemd
. "$(dirname "$0")/lib.sh"

command -v systemd-analyze >/dev/null || { echo "FAIL: no systemd-analyze (scripts/setup installs systemd)"; exit 1; }
mkdir -p "$T/bin" "$T/etc/fulcrum" "$T/units"
ln -s "$BUILD/cp/fulcrum-cp" "$BUILD/dp/fulcrum-dp" "$T/bin/"
# the lab's config with its paths (socket, shared memory) in $T
sed "s|/run/fulcrum-lab|$T|g" "$ROOT/config/lab.conf" >"$T/etc/fulcrum/fulcrum.conf"

bindir=$(sed -n 's|^ExecStart=\(.*\)/fulcrum-cp .*|\1|p' "$BUILD/config/fulcrum-cp.service")
confpath=$(sed -n 's|^ExecStart=.* -c \(.*\)$|\1|p' "$BUILD/config/fulcrum-cp.service")
[ -n "$bindir" ] && [ -n "$confpath" ] || { fail "no ExecStart in the generated fulcrum-cp.service"; exit 1; }
for u in fulcrum-cp.service fulcrum-dp.service; do
	sed "s|$bindir/|$T/bin/|g; s|$confpath|$T/etc/fulcrum/fulcrum.conf|g" "$BUILD/config/$u" >"$T/units/$u"
done

out=$(cd "$T/units" && systemd-analyze verify fulcrum-cp.service fulcrum-dp.service 2>&1)
rc=$?
[ $rc = 0 ] && [ -z "$out" ] && ok "systemd-analyze verify: both units clean" ||
	fail "systemd-analyze verify (exit $rc): $out"

# each ExecStartPre/ExecReload line that checks the config, as systemd runs it
mapfile -t checks < <(sed -n 's/^Exec\(StartPre\|Reload\)=\(.*--check-config.*\)/\2/p' "$T/units/fulcrum-cp.service")
[ ${#checks[@]} = 2 ] || fail "expected the config check in ExecStartPre and ExecReload, found ${#checks[@]}"
for c in "${checks[@]}"; do
	out=$($c 2>&1) && ok "'${c//$T/\$T}' passes the config: $out" || fail "'$c' failed: $out"
done
cp "$T/etc/fulcrum/fulcrum.conf" "$T/good.conf"
echo "vips = ( { bogus = 1; } );" >>"$T/etc/fulcrum/fulcrum.conf"
out=$(${checks[0]} 2>&1) && fail "a broken config passed the check: $out" ||
	ok "a broken config fails the check (so 'systemctl reload' fails and the start is refused): $out"
cp "$T/good.conf" "$T/etc/fulcrum/fulcrum.conf"

# fulcrum-dp before fulcrum-cp: a non-zero exit that names the problem
start=$(sed -n 's/^ExecStart=//p' "$T/units/fulcrum-dp.service")
out=$(timeout 20 $start 2>&1)
rc=$?
if [ $rc != 0 ] && [ $rc != 124 ] && grep -q "is fulcrum-cp running" <<<"$out"; then
	ok "fulcrum-dp without fulcrum-cp exits $rc (Restart=on-failure retries): $(grep 'fulcrum-cp running' <<<"$out")"
else
	fail "fulcrum-dp without fulcrum-cp: exit $rc: $out"
fi
grep -qE '^(Requires|BindsTo|PartOf)=.*fulcrum-cp' "$T/units/fulcrum-dp.service" &&
	fail "fulcrum-dp.service would stop with fulcrum-cp (fail static needs Wants=)" ||
	ok "fulcrum-dp.service only Wants= fulcrum-cp: it keeps forwarding while fulcrum-cp restarts"

echo "$failures failures"
[ $failures = 0 ]
