#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# scripts/host-setup: --dry-run prints every step and changes nothing; the
# hugepage part for real (a few pages reserved on node 0, then the previous
# count restored); check's one-line diagnoses. Needs root for the real part.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
hs=$top/scripts/host-setup
hp=/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages
failures=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

before=$(cat "$hp")
out=$("$hs" --dry-run all --pages 512 --nics 0000:01:00.0,0000:01:00.1 --config "$top/config/fulcrum.conf" 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /'
[ $rc = 0 ] && ok "dry run exits 0" || fail "dry run exit $rc"
for step in "+ echo 512 > $hp" "+ modprobe vfio-pci" \
	"--bind=vfio-pci 0000:01:00.0" "--bind=vfio-pci 0000:01:00.1"; do
	grep -qF -- "$step" <<<"$out" && ok "dry run prints '$step'" || fail "dry run lacks '$step'"
done
grep -qE '^\+ (mkdir -p /dev/hugepages|mount -t hugetlbfs)|already mounted' <<<"$out" &&
	ok "dry run covers the hugetlbfs mount" || fail "no mount step"
[ "$(cat "$hp")" = "$before" ] && ok "dry run left nr_hugepages at $before" ||
	fail "dry run changed nr_hugepages to $(cat "$hp")"

"$hs" unknown >/dev/null 2>&1; rc=$?
[ $rc = 2 ] && ok "unknown command: exit 2" || fail "unknown command: exit $rc"
"$hs" --dry-run bind not-a-pci >/dev/null 2>&1; rc=$?
[ $rc = 1 ] && ok "bad PCI address refused" || fail "bad PCI address: exit $rc"

# the real hugepage part: reserve 4 more pages, check, restore
want=$((before + 4))
"$hs" hugepages --pages $want --node 0 >/tmp/fl-hs.$$ 2>&1; rc=$?
got=$(cat "$hp")
if [ $rc = 0 ] && [ "$got" = $want ]; then
	ok "reserved: node 0 has $got pages of 2M (was $before)"
elif [ $rc = 1 ] && [ "$got" -lt $want ] && grep -q "too few hugepages" /tmp/fl-hs.$$; then
	ok "memory too fragmented for $want pages; reported in one line: $(grep 'too few' /tmp/fl-hs.$$)"
else
	fail "hugepages --pages $want: exit $rc, $got pages: $(cat /tmp/fl-hs.$$)"
fi
out=$("$hs" check --pages $want 2>&1)
grep -q "IOMMU" <<<"$out" && ok "check reports the IOMMU in one line: $(grep IOMMU <<<"$out")" ||
	fail "check says nothing about the IOMMU"
out=$("$hs" check --pages $((want + 100000)) 2>&1); rc=$?
[ $rc = 1 ] && grep -q "too few hugepages on node 0" <<<"$out" &&
	ok "check: $(grep 'too few' <<<"$out")" || fail "check does not report too few hugepages"
"$hs" hugepages --pages "$before" --node 0 >/dev/null 2>&1
[ "$(cat "$hp")" = "$before" ] && ok "restored to $before pages" || fail "not restored: $(cat "$hp") != $before"
rm -f /tmp/fl-hs.$$
[ $failures = 0 ] && echo "ok host_setup" || echo "FAIL host_setup: $failures"
exit $((failures > 0))
