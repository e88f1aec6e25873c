#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""fulcrum-dp end to end in one process, against dpdk-testpmd on the same
vdev in the same run: net_pcap replaying 64-byte TCP frames to the VIP from
many flows (infinite_rx=1), transmitted packets dropped by the PMD (no
tx_pcap), one worker lcore. Prints Mpps: median and spread of several runs.

Run (root, after scripts/setup): bench/dp_pcap_bench.py [runs] [flows] [--hugepages]

--hugepages runs both programs as an edge server would: EAL memory (the
mbufs) and fulcrum-dp's tables and conntrack on 2 MiB pages. It reserves
HUGEPAGES pages for the run (vm.nr_hugepages, put back afterwards) and
mounts a hugetlbfs that only this benchmark sees (a private mount
namespace), so the host's other DPDK users are not disturbed."""
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from scapy.all import IP, TCP, Ether, Raw, wrpcap

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("FL_BUILD_DIR", os.path.join(TOP, "build"))
WARMUP, MEASURE = 2.0, 5.0
HUGEPAGES = 512         # 1 GiB: 512 MiB of EAL memory, conntrack (64 MiB), tables
NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
EAL_MEMORY = ["--no-huge", "-m", "512"]
# A plain name, so the tables and conntrack go on hugetlbfs when one is
# mounted, as in production; removed at the end.
SHM_NAME = f"flbench{os.getpid()}"


def remove_shm():
    for d in ("/dev/hugepages", "/dev/shm"):
        for f in (os.listdir(d) if os.path.isdir(d) else []):
            if f.startswith(f"fulcrum-{SHM_NAME}"):
                os.unlink(os.path.join(d, f))


def make_pcap(path, flows):
    pkts = []
    for i in range(flows):
        p = (Ether(src="02:00:00:00:00:aa", dst="02:00:00:00:00:01") /
             IP(src=f"198.51.{i // 250 % 256}.{i % 250 + 1}", dst="10.0.0.100") /
             TCP(sport=1024 + i % 60000, dport=80, flags="A"))
        pkts.append(p / Raw(b"\0" * (60 - len(p))))     # 60 bytes + FCS = 64 on the wire
    wrpcap(path, pkts)


def write_config(d, pcap):
    backends = ", ".join(f'{{ address = "10.1.0.{i}"; }}' for i in range(1, 17))
    with open(os.path.join(d, "bench.conf"), "w") as f:
        f.write(f"""
global: {{ shm_name = "{SHM_NAME}"; }};
limits: {{ max_vips = 4; max_backends = 64; ring_entries = 262144; max_workers = 2; }};
dataplane: {{
  mode = "dpdk";
  dpdk: {{
    eal_args = [ {", ".join(f'"{a}"' for a in EAL_MEMORY)}, "--no-pci", "-l", "0,1", "--file-prefix", "flbench",
                 "--log-level", "lib.eal:error" ];
    ports = ( {{ name = "bench"; device = "net_pcap_bench,rx_pcap={pcap},infinite_rx=1"; }} );
    workers = [ 1 ];
  }};
  next_hop: {{ mac = "02:00:00:00:00:fe"; }};
  tunnel_source_v4 = "192.0.2.1";
  conntrack: {{ capacity = 1048576; }};
}};
healthcheck: {{ type = "none"; }};
vips = ( {{ address = "10.0.0.100"; port = 80; protocol = "tcp"; method = "ipip";
           backends = ( {backends} ); }} );
""")
    return os.path.join(d, "bench.conf")


def counters(proc):
    proc.send_signal(signal.SIGUSR1)
    out = {}
    while True:
        line = proc.stdout.readline()
        if not line.strip():
            return out
        k, v = line.split()
        out[k] = int(v)


def run_fulcrum(conf):
    subprocess.run([os.path.join(BUILD, "cp", "fulcrum-tables"), conf], check=True,
                   capture_output=True)
    proc = subprocess.Popen([os.path.join(BUILD, "dp", "fulcrum-dp"), "-c", conf],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(WARMUP)
        a, t0 = counters(proc), time.monotonic()
        time.sleep(MEASURE)
        b, t1 = counters(proc), time.monotonic()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    assert b["tx_packets"] - a["tx_packets"] > 0, "fulcrum-dp forwarded nothing"
    return (b["tx_packets"] - a["tx_packets"]) / (t1 - t0) / 1e6


def run_testpmd(pcap, mode):
    args = ["dpdk-testpmd", *EAL_MEMORY, "--no-pci", "-l", "0,1",
            "--file-prefix", "flbench-tp", "--log-level", "lib.eal:error",
            "--vdev", f"net_pcap_tp,rx_pcap={pcap},infinite_rx=1", "--",
            f"--forward-mode={mode}", "--stats-period=1", "--total-num-mbufs=8192"]
    try:
        out = subprocess.run(args, capture_output=True, text=True,
                             timeout=WARMUP + MEASURE + 1).stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    pps = [int(x) for x in re.findall(r"Rx-pps:\s+(\d+)", out)]
    steady = pps[int(WARMUP) + 1:] or pps
    return statistics.median(steady) / 1e6


def in_hugepage_namespace():
    """Re-runs this script in a private mount namespace with HUGEPAGES pages
    reserved; returns its exit code. In that namespace (FL_BENCH_HUGE set)
    mounts the hugetlbfs and returns None."""
    global EAL_MEMORY
    if os.environ.get("FL_BENCH_HUGE"):
        os.makedirs("/dev/hugepages", exist_ok=True)
        subprocess.run(["mount", "-t", "hugetlbfs", "nodev", "/dev/hugepages"], check=True)
        EAL_MEMORY = ["-m", "512"]
        return None
    old = open(NR_HUGEPAGES).read().strip()
    with open(NR_HUGEPAGES, "w") as f:
        f.write(str(int(old) + HUGEPAGES))
    try:
        return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                               *sys.argv], env={**os.environ, "FL_BENCH_HUGE": "1"}).returncode
    finally:
        with open(NR_HUGEPAGES, "w") as f:
            f.write(old)


def main():
    args = [a for a in sys.argv[1:] if a != "--hugepages"]
    if len(args) < len(sys.argv) - 1:
        rc = in_hugepage_namespace()
        if rc is not None:
            sys.exit(rc)
    runs = int(args[0]) if len(args) > 0 else 5
    flows = int(args[1]) if len(args) > 1 else 4096
    with tempfile.TemporaryDirectory(prefix="fl-bench-") as d:
        pcap = os.path.join(d, "in.pcap")
        make_pcap(pcap, flows)
        conf = write_config(d, pcap)
        results = {"fulcrum-dp (IPIP, 16 backends)": [], "testpmd macswap": [], "testpmd 5tswap": []}
        try:
            for _ in range(runs):      # interleaved, so drift hits all alike
                results["fulcrum-dp (IPIP, 16 backends)"].append(run_fulcrum(conf))
                results["testpmd macswap"].append(run_testpmd(pcap, "macswap"))
                results["testpmd 5tswap"].append(run_testpmd(pcap, "5tswap"))
        finally:
            remove_shm()
    huge = any(l.split()[2] == "hugetlbfs" for l in open("/proc/mounts"))
    print(f"tables and conntrack on {'hugetlbfs' if huge else '/dev/shm (no hugetlbfs mounted)'}; "
          f"EAL memory {'on 2 MiB pages' if '--no-huge' not in EAL_MEMORY else '--no-huge'} for both programs")
    print(f"{flows} flows, 64-byte frames, one worker, {runs} runs of {MEASURE:.0f} s each")
    for name, v in results.items():
        print(f"  {name:32s} median {statistics.median(v):6.2f} Mpps  "
              f"(min {min(v):.2f}, max {max(v):.2f})")
    f, m, t = (statistics.median(v) for v in results.values())
    print(f"  fulcrum-dp / 5tswap {f / t:.2f}, fulcrum-dp / macswap {f / m:.2f}")


if __name__ == "__main__":
    main()
