# SPDX-License-Identifier: BSD-3-Clause
"""Runs fulcrum-dp on net_pcap ports in a scratch directory: write the
config, publish tables with fulcrum-tables, feed a pcap, read the counters
(SIGUSR1) until every packet was seen, stop it, and read the output pcap."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

from scapy.all import Ether, rdpcap, wrpcap

BUILD = os.environ["FL_BUILD_DIR"]
DP = os.path.join(BUILD, "dp", "fulcrum-dp")
TABLES = os.path.join(BUILD, "cp", "fulcrum-tables")

NEXT_HOP_MAC = "02:00:00:00:00:fe"


class Failure(Exception):
    pass


class Lab:
    """One scratch directory, one shared memory, one config."""

    def __init__(self, tag, vips):
        self.dir = tempfile.mkdtemp(prefix=f"fl-{tag}-")
        self.tag = f"{tag[:6]}{os.getpid() % 10000}"
        self.shm = os.path.join(self.dir, "shm")
        self.vips = vips
        self.config = os.path.join(self.dir, "fulcrum.conf")
        self.write_config(vips)

    def pcaps(self, kind):
        return [os.path.join(self.dir, f"{kind}{q}.pcap") for q in range(self.queues)]

    def write_config(self, vips, workers="1", lcores="0,1", device=None, queues=1):
        """queues > 1: one worker per queue, all on the second CPU (lcores
        1, 2, ... mapped onto CPU 1), and one pcap pair per queue."""
        self.vips = vips
        self.queues = queues
        if queues > 1:
            workers = ", ".join(str(q + 1) for q in range(queues))
            lcores = "0," + ",".join(f"{q + 1}@1" for q in range(queues))
        files = ",".join(f"rx_pcap={i},tx_pcap={o}" for i, o in zip(self.pcaps("in"), self.pcaps("out")))
        device = device or f"net_pcap_{self.tag},{files}"
        text = f"""
global: {{ shm_name = "{self.shm}"; hash_seed = 0x1234567887654321L; }};
limits: {{ max_vips = 16; max_backends = 64; ring_entries = 1048576; max_workers = 2; }};
dataplane: {{
  mode = "dpdk";
  dpdk: {{
    eal_args = [ "--no-huge", "-m", "256", "--no-pci", "--lcores", "{lcores}",
                 "--file-prefix", "{self.tag}", "--log-level", "lib.eal:error" ];
    ports = ( {{ name = "{self.tag}"; device = "{device}"; }} );
    workers = [ {workers} ];
    idle_backoff_us = 1000;
  }};
  next_hop: {{ mac = "{NEXT_HOP_MAC}"; }};
  tunnel_source_v4 = "192.0.2.1";
  tunnel_source_v6 = "2001:db8::1";
  gue_port = 6080;
  mtu = 1500;
  conntrack: {{ capacity = 65536; }};
}};
healthcheck: {{ type = "none"; }};
vips = ( {vips} );
"""
        with open(self.config, "w") as f:
            f.write(text)

    def publish(self, *extra):
        r = subprocess.run([TABLES, self.config, *extra], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise Failure(f"fulcrum-tables: {r.stdout}{r.stderr}")
        return r.stdout

    def start_fails(self):
        """Runs fulcrum-dp expecting it to refuse to start: (exit code, stderr)."""
        for path in self.pcaps("in"):
            wrpcap(path, [], linktype=1)
        r = subprocess.run([DP, "-c", self.config], capture_output=True, text=True, timeout=30)
        return r.returncode, r.stderr

    def lookup(self, src, sport, dst, dport, proto="tcp"):
        out = self.publish("--lookup", f"{src}:{sport}", f"{dst}:{dport}", proto)
        return out.split()[1]   # "backend ADDR ..."

    def run(self, packets, expect_rx=None, timeout=20):
        """Feeds packets through one fulcrum-dp run; returns (counters, output packets)."""
        for q, (inp, out) in enumerate(zip(self.pcaps("in"), self.pcaps("out"))):
            wrpcap(inp, packets[q::self.queues], linktype=1)
            if os.path.exists(out):
                os.unlink(out)
        expect_rx = len(packets) if expect_rx is None else expect_rx
        proc = subprocess.Popen([DP, "-c", self.config], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        counters = {}
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                time.sleep(0.3)
                if proc.poll() is not None:
                    raise Failure(f"fulcrum-dp exited {proc.returncode}: {proc.stderr.read()}")
                proc.send_signal(signal.SIGUSR1)
                counters = read_counters(proc)
                if counters.get("rx_packets", 0) >= expect_rx:
                    break
            else:
                raise Failure(f"fulcrum-dp saw {counters.get('rx_packets')} of {expect_rx} packets")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rest, err = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                rest, err = proc.communicate()
        final = parse_counters(rest)
        if proc.returncode != 0:
            raise Failure(f"fulcrum-dp exit {proc.returncode}: {err}")
        frames = [f for out in self.pcaps("out") if os.path.getsize(out) > 24 for f in rdpcap(out)]
        # The kernel behind the TAP speaks up on its own (IPv6 MLD, router
        # solicitations): multicast frames that leave as exception traffic.
        ours = [f for f in frames if not int(f[Ether].dst.split(":")[0], 16) & 1]
        if len(frames) - len(ours) > final.get("exception_tx_packets", 0):
            raise Failure(f"{len(frames) - len(ours)} multicast frames out, but only "
                          f"{final.get('exception_tx_packets', 0)} came from the kernel")
        return final or counters, ours

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)   # tables and conntrack files too


def parse_counters(text):
    counters = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counters[parts[0]] = int(parts[1])
    return counters


def read_counters(proc):
    """One SIGUSR1 block: fulcrum-dp prints every counter, then a blank line."""
    lines = []
    while True:
        line = proc.stdout.readline()
        if not line or not line.strip():
            break
        lines.append(line)
    return parse_counters("".join(lines))
