# SPDX-License-Identifier: BSD-3-Clause
# Shared by the fulcrum-cp integration scripts: a scratch directory $T, the
# servers they start (SRV[name]=pid) and fulcrum-cp ($CP_PID), all removed
# on exit whatever happens; fail/ok count and print the checks.
# Usage: FL_TEST_NAME=cp; . "$(dirname "$0")/lib.sh"
T=$(mktemp -d "/tmp/fulcrum-test-${FL_TEST_NAME:?}.XXXXXX")
declare -A SRV
CP_PID=
failures=0

cleanup() {
	[ -n "$CP_PID" ] && kill -9 "$CP_PID" 2>/dev/null
	for p in "${SRV[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
