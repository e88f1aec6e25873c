#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# The XDP balancer's counters, summed over the CPUs, one "name value" a line
# like fulcrum-dp's SIGUSR1 dump: read with bpftool from the `counters` map
# fulcrum-cp pins (PIN_DIR: $FULCRUM_BPFFS/fulcrum/<shm name, '/' as '_'>).
# The names and their order come from common/counters.h (struct
# fl_worker_counters, then the drops by enum fl_drop_reason), so this stays
# right when a counter is added. Used by scripts/lab counters on xdp, which
# needs no running fulcrum-cp (`fulcrumctl stats` asks fulcrum-cp for the
# same maps).
#
# usage: xdp_counters.py PIN_DIR
import json
import os
import re
import struct
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def names():
    text = open(os.path.join(ROOT, "common", "counters.h")).read()
    body = re.search(r"struct fl_worker_counters \{(.*?)\n\}", text, re.S).group(1)
    fields = re.findall(r"__u64 (\w+)(\[FL_DROP__MAX\])?;", body)
    drops = re.findall(r"\[FL_DROP_\w+\] = \"(\w+)\"", text)
    out = []
    for name, arr in fields:
        out += [f"drop_{d}" for d in drops] if arr else [name]
    return out


def main():
    p = subprocess.run(["bpftool", "-j", "map", "dump", "pinned",
                        os.path.join(sys.argv[1], "counters")],
                       capture_output=True, text=True, check=True)
    entry = json.loads(p.stdout)[0]
    n = names()
    total = [0] * n.__len__()
    for cpu in entry["values"]:
        raw = bytes(int(b, 16) for b in cpu["value"])
        vals = struct.unpack_from(f"<{len(n)}Q", raw)
        total = [a + b for a, b in zip(total, vals)]
    for name, v in zip(n, total):
        print(f"{name} {v}")


if __name__ == "__main__":
    main()
