#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""fulcrum-cp health checking at scale: BACKENDS backends (1,000 per VIP),
one tcp check a second each (--type tcp-half-open: a SYN, no connection),
against one accept-and-close listener.
Prints the share of one core fulcrum-cp uses in steady state (utime +
stime from /proc over MEASURE seconds), split into user and system time.

Where the listener is:
  local (default)  on this host's loopback addresses (127.v.x.y): the
                   kernel's work for the listener's side of every handshake
                   runs in fulcrum-cp's system calls and is charged to it.
  --remote         in a network namespace of its own behind a veth pair,
                   backends on 198.18.0.0/16 (the benchmarking range), with
                   RPS sending every packet either veth receives to CPU 1
                   and fulcrum-cp pinned to CPU 0: what the kernel does on
                   receive (the listener's side, and the replies reaching
                   fulcrum-cp's sockets) is charged elsewhere, as it would
                   be for backends on other hosts.

A run in which a backend went down is not valid: a check that times out
costs less than one that connects. The listener runs at a higher priority
so that other load on the host does not starve it into that.

  --shared         every VIP has the same 1,000 backends (an ingress fleet
                   behind several VIPs): BACKENDS backend entries, 1,000
                   targets, which fulcrum-cp checks once each.
  --refused        no listener: every backend refuses (the kernel answers
                   each SYN with a RST), as a fleet's down backends do.
                   fulcrum-cp starts a new backend down until it passes
                   `rise` checks, so every backend stays down, and the
                   figure is what checking down backends costs.

Run (root): bench/health_bench.py [backends] [--remote] [--shared] [--refused] [--type tcp|tcp-half-open]
FL_CP=path picks the fulcrum-cp binary (default: $FL_BUILD_DIR/cp/fulcrum-cp)."""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("FL_BUILD_DIR", os.path.join(TOP, "build"))
CP = os.environ.get("FL_CP", os.path.join(BUILD, "cp", "fulcrum-cp"))
PORT, WARMUP, MEASURE, PER_VIP = 19099, 6.0, 15.0, 1000
LISTENER_NICE = -10

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


def backend_address(remote, vip, i):
    if remote:
        return f"198.18.{vip * 4 + i // 250}.{i % 250 + 1}"
    return f"127.{vip + 1}.{i // 250}.{i % 250 + 1}"


def config(d, total, remote=False, check="tcp", shared=False):
    vips = (total + PER_VIP - 1) // PER_VIP
    groups = []
    for v in range(vips):
        n = min(PER_VIP, total - v * PER_VIP)
        bs = ",".join(f'{{ address = "{backend_address(remote, 0 if shared else v, i)}"; }}'
                      for i in range(n))
        groups.append(f'{{ address = "10.0.{v}.100"; port = 80; protocol = "tcp"; method = "ipip"; '
                      f'table_size = 10007; backends = ({bs}); }}')
    path = os.path.join(d, "bench.conf")
    with open(path, "w") as f:
        f.write(f"""
global: {{ shm_name = "{d}/shm"; control_socket = "{d}/ctl.sock"; log_level = "warn"; }};
limits: {{ max_vips = 64; max_backends = {total + 1024}; ring_entries = {10007 * vips + 1}; max_workers = 2; }};
dataplane: {{ mode = "dpdk"; dpdk: {{ ports = ( {{ device = "net_null0"; }} ); workers = [ 1 ]; }};
              next_hop: {{ mac = "02:00:00:00:00:fe"; }}; tunnel_source_v4 = "10.0.0.2"; }};
healthcheck: {{ type = "{check}"; interval_ms = 1000; timeout_ms = 500; rise = 2; fall = 3; port = {PORT}; }};
vips = ( {", ".join(groups)} );
""")
    return path


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def sh(*cmd):
    subprocess.run(cmd, check=True)


class RemoteNet:
    """A namespace behind a veth pair that owns 198.18.0.0/16, with RPS
    moving receive processing on both veth ends to CPU 1."""

    def __init__(self):
        tag = str(os.getpid())
        self.ns, self.host_if, self.ns_if = f"flhc{tag}", f"hca{tag}", f"hcb{tag}"

    def __enter__(self):
        ns = self.ns
        sh("ip", "netns", "add", ns)
        try:
            sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
               "netns", ns)
            sh("ip", "addr", "add", "198.19.255.1/30", "dev", self.host_if)
            sh("ip", "link", "set", self.host_if, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", "198.19.255.2/30", "dev", self.ns_if)
            sh("ip", "-n", ns, "link", "set", self.ns_if, "up")
            sh("ip", "-n", ns, "route", "add", "local", "198.18.0.0/16", "dev", "lo")
            sh("ip", "route", "add", "198.18.0.0/16", "via", "198.19.255.2")
            with open(f"/sys/class/net/{self.host_if}/queues/rx-0/rps_cpus", "w") as f:
                f.write("2")
            sh("ip", "netns", "exec", ns, "sh", "-c",
               f"echo 2 >/sys/class/net/{self.ns_if}/queues/rx-0/rps_cpus")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        # the veth pair and its route go with the namespace
        subprocess.run(["ip", "netns", "del", self.ns], check=False)

    def wrap(self, cmd):
        return ["ip", "netns", "exec", self.ns, "taskset", "-c", "1"] + cmd


def run(total, net, check, refused=False, shared=False):
    listener_cmd = ["nice", "-n", str(LISTENER_NICE), "/usr/bin/python3", "-c", LISTENER]
    cp_cmd = [CP, "-c"]
    if net:
        listener_cmd = net.wrap(listener_cmd)
        cp_cmd = ["taskset", "-c", "0"] + cp_cmd
    with tempfile.TemporaryDirectory(prefix="fl-hc-bench-") as d:
        listener = None if refused else subprocess.Popen(listener_cmd)
        cp = subprocess.Popen(cp_cmd + [config(d, total, net is not None, check, shared)],
                              stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(WARMUP)
            (ua, sa), t0 = cpu_ticks(cp.pid), time.monotonic()
            time.sleep(MEASURE)
            (ub, sb), t1 = cpu_ticks(cp.pid), time.monotonic()
        finally:
            cp.send_signal(signal.SIGTERM)
            err = cp.communicate(timeout=20)[1]
            if listener:
                listener.kill()
                listener.wait()
    share = 100 / os.sysconf("SC_CLK_TCK") / (t1 - t0)
    downs = err.count(" down: ")
    where = "refusing" if refused else "remote listener" if net else "local listener"
    if shared:
        where += f", {min(total, PER_VIP)} targets shared by every VIP"
    print(f"{total} {check} backends ({where}), 1 check/s each: "
          f"fulcrum-cp used {share * (ub - ua + sb - sa):.1f}% of one core over {MEASURE:.0f} s "
          f"(user {share * (ub - ua):.1f}%, system {share * (sb - sa):.1f}%; "
          f"{downs} backends went down during the run)")
    if downs:
        print("NOT VALID: backends went down (the host was too busy?)")
    return downs == 0


def main():
    ap = argparse.ArgumentParser(description="fulcrum-cp health checks at scale")
    ap.add_argument("backends", type=int, nargs="?", default=10000)
    ap.add_argument("--remote", action="store_true",
                    help="the listener in a namespace, its receive work on CPU 1")
    ap.add_argument("--type", default="tcp", choices=["tcp", "tcp-half-open"],
                    help="the check type (default tcp)")
    ap.add_argument("--shared", action="store_true",
                    help="every VIP has the same 1,000 backends")
    ap.add_argument("--refused", action="store_true",
                    help="no listener: every backend refuses, and goes down")
    a = ap.parse_args()
    if a.remote:
        if os.cpu_count() < 2:
            sys.exit("--remote needs two CPUs")
        with RemoteNet() as net:
            ok = run(a.backends, net, a.type, a.refused, a.shared)
    else:
        ok = run(a.backends, None, a.type, a.refused, a.shared)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
