#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""fulcrum-dp end to end on net_pcap: crafted packets in, bytes out.

Usage: test_dp_pcap.py CASE. Each case starts fulcrum-dp (--no-huge, its
own --file-prefix) on tables published by fulcrum-tables, and checks the
output frames against what fulcrum-tables --lookup says for each flow:
the same tables, the same hash, computed outside the data plane."""
import random
import sys

from scapy.all import ARP, ICMP, IP, IPv6, TCP, UDP, Ether
from scapy.utils import checksum

from dp_harness import NEXT_HOP_MAC, Failure, Lab

VIP4 = "10.0.0.100"
VIP6 = "2001:db8:100::1"
BACKENDS4 = ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
PORT_MAC = "02:00:00:00:00:01"
BACKEND_MAC = "02:00:00:00:01:02"


def vip(addr, port, method, backends, extra=""):
    bs = ", ".join(f'{{ address = "{b}"; {extra} }}' for b in backends)
    return (f'{{ address = "{addr}"; port = {port}; protocol = "tcp"; method = "{method}"; '
            f'table_size = 251; backends = ( {bs} ); }}')


def syn(src, sport, dst=VIP4, dport=80, flags="S", payload=b""):
    ip = IPv6(src=src, dst=dst) if ":" in dst else IP(src=src, dst=dst, flags="DF")
    return Ether(src="02:00:00:00:00:aa", dst=PORT_MAC) / ip / TCP(sport=sport, dport=dport, flags=flags) / payload


def clients(n, seed):
    rnd = random.Random(seed)
    return [(f"198.51.{rnd.randrange(256)}.{rnd.randrange(1, 255)}", rnd.randrange(1024, 65536))
            for _ in range(n)]


def check(cond, what):
    if not cond:
        raise Failure(what)


def expect_counters(c, **want):
    for k, v in want.items():
        check(c.get(k, 0) == v, f"counter {k} is {c.get(k, 0)}, expected {v} (all: {c})")


def case_forward_ipip(lab):
    lab.write_config(vip(VIP4, 80, "ipip", BACKENDS4))
    lab.publish()
    flows = clients(200, 1)
    sent = [syn(s, p) for s, p in flows]
    c, out = lab.run(sent)
    expect_counters(c, rx_packets=200, tx_packets=200, new_flows=200)
    check(len(out) == 200, f"{len(out)} frames out of 200: {[o.summary() for o in out if IP not in o or o[IP].proto != 4]}")
    by_flow = {}
    for pkt in out:
        check(pkt[Ether].dst == NEXT_HOP_MAC, f"outer dst MAC {pkt[Ether].dst}")
        outer = pkt[IP]
        check(outer.proto == 4 and outer.src == "192.0.2.1", f"outer {outer.summary()}")
        check(checksum(bytes(outer)[:20]) == 0, "outer IPv4 header checksum")
        inner = IP(bytes(outer.payload))
        by_flow[(inner.src, inner[TCP].sport)] = (outer.dst, bytes(inner))
    per_backend = {}
    for (s, p), pkt in zip(flows, sent):
        check((s, p) in by_flow, f"flow {s}:{p} not forwarded")
        backend, inner = by_flow[(s, p)]
        want = lab.lookup(s, p, VIP4, 80)
        check(backend == want, f"flow {s}:{p} went to {backend}, the tables say {want}")
        check(inner == bytes(pkt[IP]), f"flow {s}:{p}: inner packet changed")
        per_backend[backend] = per_backend.get(backend, 0) + 1
    check(len(per_backend) == 3, f"200 flows over {per_backend}")
    print("per backend:", per_backend)


def case_methods(lab):
    lab.write_config(", ".join([
        vip(VIP4, 443, "gue", ["10.1.0.9"]),
        vip(VIP4, 8080, "l2dsr", ["10.0.0.7"], f'mac = "{BACKEND_MAC}";'),
        vip(VIP6, 80, "ip6ip6", ["2001:db8:1::1"]),
    ]))
    lab.publish()
    pkts = [syn("198.51.100.7", 40000, VIP4, 443), syn("198.51.100.7", 40001, VIP4, 8080),
            syn("2001:db8:c::7", 40002, VIP6, 80)]
    c, out = lab.run(pkts)
    expect_counters(c, rx_packets=3, tx_packets=3)
    gue = [p for p in out if UDP in p and p[UDP].dport == 6080]
    check(len(gue) == 1, "one GUE frame")
    g = gue[0]
    check(g[IP].dst == "10.1.0.9" and g[IP].proto == 17, f"GUE outer {g.summary()}")
    check(32768 <= g[UDP].sport <= 65535, f"GUE source port {g[UDP].sport}")
    check(bytes(g[UDP].payload) == bytes(pkts[0][IP]), "GUE inner packet changed")
    dsr = [p for p in out if p[Ether].dst == BACKEND_MAC]
    check(len(dsr) == 1 and bytes(dsr[0][IP]) == bytes(pkts[1][IP]), "L2 DSR: only the MAC changes")
    six = [p for p in out if IPv6 in p and p[IPv6].nh == 41]
    check(len(six) == 1 and six[0][IPv6].dst == "2001:db8:1::1", "ip6ip6 outer header")
    check(bytes(six[0][IPv6].payload) == bytes(pkts[2][IPv6]), "ip6ip6 inner packet changed")


def case_kernel_and_drops(lab):
    lab.write_config(vip(VIP4, 80, "ipip", BACKENDS4))
    lab.publish()
    arp = Ether(src="02:00:00:00:00:aa", dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="10.0.0.2")
    ssh = syn("198.51.100.7", 40000, "10.0.0.2", 22)
    bad = bytearray(bytes(syn("198.51.100.7", 40001)))
    bad[14] = 0x43      # IHL 3
    short = Ether(bytes(syn("198.51.100.7", 40002))[:30])
    c, out = lab.run([arp, ssh, Ether(bytes(bad)), short])
    expect_counters(c, rx_packets=4, tx_packets=0, exception_packets=2,
                    drop_ip_bad_header=1, drop_ip_truncated=1)
    check(len(out) == 0, "nothing goes out the port")


def case_restart_keeps_flows(lab):
    lab.write_config(vip(VIP4, 80, "ipip", BACKENDS4))
    lab.publish()
    flows = clients(300, 2)
    c, out = lab.run([syn(s, p) for s, p in flows])
    expect_counters(c, new_flows=300)
    first = {(IP(bytes(o[IP].payload)).src, IP(bytes(o[IP].payload))[TCP].sport): o[IP].dst for o in out}
    # Two more backends: Maglev now sends some of these flows elsewhere, but
    # the restarted data plane finds them in its conntrack file.
    lab.write_config(vip(VIP4, 80, "ipip", BACKENDS4 + ["10.1.0.4", "10.1.0.5"]))
    lab.publish()
    moved_by_tables = sum(lab.lookup(s, p, VIP4, 80) != first[(s, p)] for s, p in flows)
    c, out = lab.run([syn(s, p, flags="A") for s, p in flows])
    second = {(IP(bytes(o[IP].payload)).src, IP(bytes(o[IP].payload))[TCP].sport): o[IP].dst for o in out}
    kept = sum(second.get(f) == first[f] for f in flows)
    print(f"restart: {kept} of {len(flows)} flows kept their backend; "
          f"the new tables alone would have moved {moved_by_tables}")
    check(moved_by_tables > 0, "the new tables move no flow: the case proves nothing")
    check(kept == len(flows), f"{len(flows) - kept} flows changed backend across the restart")
    # Counters live in the shared memory too: they add up across the runs.
    expect_counters(c, rx_packets=600, ct_hits=300, new_flows=300)


def case_too_big(lab):
    lab.write_config(vip(VIP4, 80, "ipip", BACKENDS4))
    lab.publish()
    big = syn("198.51.100.7", 40000, flags="PA", payload=b"x" * (1500 - 40))
    c, out = lab.run([big])
    expect_counters(c, rx_packets=1, drop_too_big=1, icmp_generated=1)
    check(len(out) == 1 and ICMP in out[0], f"one ICMP answer, got {[o.summary() for o in out]}")
    icmp = out[0][ICMP]
    check(icmp.type == 3 and icmp.code == 4 and icmp.nexthopmtu == 1480,
          f"fragmentation needed with MTU 1480: {icmp.summary()} mtu {icmp.nexthopmtu}")
    check(out[0][IP].dst == "198.51.100.7" and out[0][IP].src == VIP4, "answer to the client from the VIP")


def case_two_workers(lab):
    """Two queues, two workers: each its own conntrack and counters, summed."""
    lab.write_config(vip(VIP4, 80, "ipip", BACKENDS4), queues=2)
    lab.publish()
    flows = clients(200, 3)
    sent = [syn(s, p) for s, p in flows]
    c, out = lab.run(sent)
    expect_counters(c, rx_packets=200, tx_packets=200, new_flows=200, ct_occupancy=200)
    got = {(IP(bytes(o[IP].payload)).src, IP(bytes(o[IP].payload))[TCP].sport): o[IP].dst for o in out}
    wrong = [f for f in flows if got.get(f) != lab.lookup(f[0], f[1], VIP4, 80)]
    check(not wrong, f"{len(wrong)} of 200 flows not where the tables say")


def case_startup_errors(lab):
    """Each refusal is one clear line and a non-zero exit."""
    v = vip(VIP4, 80, "ipip", BACKENDS4)
    want = []
    lab.write_config(v)
    want.append(("no tables", "is fulcrum-cp running?"))
    rc, err = lab.start_fails()
    results = [(rc, err)]
    lab.publish()
    lab.write_config(v, device="net_nosuchdriver0")
    want.append(("port not found", "port net_nosuchdriver0: cannot probe device"))
    results.append(lab.start_fails())
    lab.write_config(v, workers="1, 2", lcores="0,1,2@1")
    want.append(("queue count", "2 queues asked, the device has 1"))
    results.append(lab.start_fails())
    lab.write_config(v, workers="3")
    want.append(("core unavailable", "worker lcore 3 is not enabled"))
    results.append(lab.start_fails())
    lab.write_config(v, workers="0")
    want.append(("main lcore", "worker lcore 0 is the EAL main lcore"))
    results.append(lab.start_fails())
    lab.write_config(v)
    with open(lab.shm, "r+b") as f:      # abi_version: bytes 8..11 of the header
        f.seek(8)
        f.write((99).to_bytes(4, "little"))
    want.append(("ABI", "ABI version 99, this build speaks 1"))
    results.append(lab.start_fails())
    for (what, text), (rc, err) in zip(want, results):
        lines = [l for l in err.splitlines() if l.startswith("fulcrum-dp:")]
        print(f"{what}: exit {rc}: {lines}")
        check(rc != 0, f"{what}: fulcrum-dp started (exit {rc})")
        check(any(text in l for l in lines), f"{what}: no line saying '{text}' in {err!r}")


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print(f"usage: {sys.argv[0]} {{{','.join(CASES)}}}", file=sys.stderr)
        return 2
    lab = Lab(sys.argv[1], "")
    try:
        CASES[sys.argv[1]](lab)
    except Failure as e:
        print(f"FAIL {sys.argv[1]}: {e}")
        return 1
    finally:
        lab.close()
    print(f"ok {sys.argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
