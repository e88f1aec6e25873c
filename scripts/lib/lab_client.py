#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Client side of the lab (scripts/lab), run inside its client namespace by
# scripts/demo and tests/integration/test_lab_e2e.py. Stdlib only; every
# answer is one JSON line on stdout.
#
# usage: lab_client.py spread N     N HTTP requests through the VIP, each on a
#                                   new connection: counts per backend, all and
#                                   by distinct source port
#        lab_client.py hold N       N echo connections held open; each line
#                                   "check T" on stdin checks them (T s at most)
#        lab_client.py probe S      new connections back to back for S s: when
#                                   the last one failed
import json
import select
import socket
import sys
import time

VIP = "10.98.100.1"
HTTP, ECHO = 80, 9000

def http_get(path="/", timeout=2.0, port_seen=None):
    """One HTTP/1.0 request on a new connection; the body, or None.
    port_seen, a list, gets the connection's source port."""
    try:
        with socket.create_connection((VIP, HTTP), timeout) as s:
            if port_seen is not None:
                port_seen.append(s.getsockname()[1])
            s.settimeout(timeout)
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: lab\r\n\r\n".encode())
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    return body.decode(errors="replace").strip()


def judge_shares(by_port, weights):
    """Each backend's share of the distinct source ports against its weight's
    share. Limit: 10% of the weight share, or 4.5 binomial standard
    deviations of that many draws where that is wider (about one false
    failure in 100,000 runs a backend), which still tells weights apart
    from no weights by far with a few hundred draws."""
    total_w = sum(weights.values())
    draws = sum(by_port.values())
    shares = {}
    for b, w in weights.items():
        want = w / total_w
        share = by_port.get(b, 0) / max(draws, 1)
        limit = max(0.10 * want, 4.5 * (want * (1 - want) / max(draws, 1)) ** 0.5)
        shares[b] = {"share": share, "want": want, "limit": limit,
                     "ok": draws > 0 and abs(share - want) <= limit}
    return shares


def client_spread(n, weights=None):
    """counts: connections per backend; by_port: the same for each source
    port's first connection only. The kernel reuses a port at once (the
    server closes first), and a reused 5-tuple is the same draw of the
    hash, so only by_port counts independent samples of the shares. With
    weights ("be1=100,be2=200"), shares: judge_shares of them."""
    counts, by_port, first, failed = {}, {}, set(), 0
    for _ in range(n):
        port = []
        body = http_get(port_seen=port)
        if body is None or not body.startswith("backend "):
            failed += 1
            continue
        be = body.split()[1]
        counts[be] = counts.get(be, 0) + 1
        if port and port[0] not in first:
            first.add(port[0])
            by_port[be] = by_port.get(be, 0) + 1
    out = {"counts": counts, "by_port": by_port, "failed": failed}
    if weights:
        out["shares"] = judge_shares(by_port, {b: int(w) for b, w in
                                               (x.split("=") for x in weights.split(","))})
    print(json.dumps(out), flush=True)


def client_hold(n):
    """Holds n echo connections; on each "check T" line from stdin, sends a
    line on every live one and waits T s at most for all echoes; prints the
    connections that broke since, by backend."""
    conns = {}
    for i in range(n):
        s = socket.create_connection((VIP, ECHO), 3)
        s.settimeout(3)
        name = b""
        while not name.endswith(b"\n"):
            b = s.recv(64)
            if not b:
                raise SystemExit("echo connection closed before its banner")
            name += b
        s.setblocking(False)
        conns[s] = [name.decode().strip(), b""]
    by = {}
    for v in conns.values():
        by[v[0]] = by.get(v[0], 0) + 1
    print(json.dumps({"held": len(conns), "by_backend": by}), flush=True)
    seq = 0
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        limit = float(cmd[1])
        seq += 1
        broken, pending = {}, {}
        for s, v in list(conns.items()):
            msg = f"ping {seq}\n".encode()
            try:
                s.send(msg)
                pending[s] = msg
                v[1] = b""
            except OSError:
                broken[v[0]] = broken.get(v[0], 0) + 1
                del conns[s]
                s.close()
        end = time.monotonic() + limit
        while pending and time.monotonic() < end:
            r, _, _ = select.select(list(pending), [], [], 0.2)
            for s in r:
                v = conns[s]
                try:
                    b = s.recv(256)
                except OSError:
                    b = b""
                if not b:
                    broken[v[0]] = broken.get(v[0], 0) + 1
                    del conns[s], pending[s]
                    s.close()
                    continue
                v[1] += b
                if v[1] == pending[s]:
                    del pending[s]
        for s in pending:	# no echo in time: counted broken, dropped
            v = conns.pop(s)
            broken[v[0]] = broken.get(v[0], 0) + 1
            s.close()
        by = {}
        for v in conns.values():
            by[v[0]] = by.get(v[0], 0) + 1
        print(json.dumps({"broken": broken, "alive": len(conns), "by_backend": by}), flush=True)


def client_probe(seconds):
    """New connections back to back for `seconds`: when the last one that
    failed was started (CLOCK_MONOTONIC) and how many answered in a row at
    the end. The start, not the end: the timeout (1 s, so that a loaded
    2-core machine does not fail a live backend's answer) must not count
    as failover time."""
    end = time.monotonic() + seconds
    last_fail, fails, total, tail = None, 0, 0, 0
    while time.monotonic() < end:
        total += 1
        started = time.monotonic()
        if http_get(timeout=1.0) is None:
            fails += 1
            tail = 0
            last_fail = started
        else:
            tail += 1
        time.sleep(0.01)
    print(json.dumps({"last_fail_at": last_fail, "fails": fails, "total": total, "tail_ok": tail}),
          flush=True)


def main():
    cmd, arg, more = sys.argv[1], sys.argv[2], sys.argv[3:]
    {"spread": lambda: client_spread(int(arg), *more),
     "hold": lambda: client_hold(int(arg)),
     "probe": lambda: client_probe(float(arg))}[cmd]()


if __name__ == "__main__":
    main()
