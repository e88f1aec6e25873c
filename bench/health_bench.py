#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""fulcrum-cp health checking at scale: VIPS x PER_VIP tcp backends on
loopback addresses (127.v.x.y), one check a second each, against a local
accept-and-close listener. Prints the share of one core fulcrum-cp uses in
steady state (utime + stime from /proc over MEASURE seconds).

Run (root, after scripts/setup): bench/health_bench.py [backends]"""
import os
import signal
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("FL_BUILD_DIR", os.path.join(TOP, "build"))
PORT, WARMUP, MEASURE = 19099, 6.0, 15.0

LISTENER = f"""
import selectors, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PORT})); s.listen(4096); s.setblocking(False)
sel = selectors.DefaultSelector(); sel.register(s, selectors.EVENT_READ)
while True:
    for _ in sel.select():
        try:
            while True:
                c, _ = s.accept(); c.close()
        except BlockingIOError:
            pass
"""


def config(d, total):
    per_vip, vips = 1000, (total + 999) // 1000
    groups = []
    for v in range(vips):
        n = min(per_vip, total - v * per_vip)
        bs = ",".join(f'{{ address = "127.{v + 1}.{i // 250}.{i % 250 + 1}"; }}' for i in range(n))
        groups.append(f'{{ address = "10.0.{v}.100"; port = 80; protocol = "tcp"; method = "ipip"; '
                      f'table_size = 10007; backends = ({bs}); }}')
    path = os.path.join(d, "bench.conf")
    with open(path, "w") as f:
        f.write(f"""
global: {{ shm_name = "{d}/shm"; control_socket = "{d}/ctl.sock"; log_level = "warn"; }};
limits: {{ max_vips = 64; max_backends = {total + 1024}; ring_entries = {10007 * vips + 1}; max_workers = 2; }};
dataplane: {{ mode = "dpdk"; dpdk: {{ ports = ( {{ device = "net_null0"; }} ); workers = [ 1 ]; }};
              next_hop: {{ mac = "02:00:00:00:00:fe"; }}; tunnel_source_v4 = "10.0.0.2"; }};
healthcheck: {{ type = "tcp"; interval_ms = 1000; timeout_ms = 500; rise = 2; fall = 3; port = {PORT}; }};
vips = ( {", ".join(groups)} );
""")
    return path


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    with tempfile.TemporaryDirectory(prefix="fl-hc-bench-") as d:
        listener = subprocess.Popen(["/usr/bin/python3", "-c", LISTENER])
        cp = subprocess.Popen([os.path.join(BUILD, "cp", "fulcrum-cp"), "-c", config(d, total)],
                              stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(WARMUP)
            a, t0 = cpu_seconds(cp.pid), time.monotonic()
            time.sleep(MEASURE)
            b, t1 = cpu_seconds(cp.pid), time.monotonic()
        finally:
            cp.send_signal(signal.SIGTERM)
            err = cp.communicate(timeout=20)[1]
            listener.kill()
            listener.wait()
    downs = err.count(" down: ")
    print(f"{total} tcp backends, 1 check/s each: fulcrum-cp used "
          f"{100 * (b - a) / (t1 - t0):.1f}% of one core over {MEASURE:.0f} s "
          f"({downs} backends went down during the run)")


if __name__ == "__main__":
    main()
