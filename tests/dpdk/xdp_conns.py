#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Long-lived TCP connections for test_netns_xdp.sh, stdlib only.
#
#   xdp_conns.py serve NAME PORT
#       echo server: answers each line with "NAME line".
#   xdp_conns.py client ADDR PORT N DIR ROUNDS
#       opens N connections, then for each round r = 0..ROUNDS-1 waits (at
#       most 120 s) for DIR/go<r>, sends one line on every connection and
#       expects its echo within 5 s from the same backend as in round 0;
#       writes DIR/result<r>: "broken B ok O moved M backends be1=..".
#       Connections already broken stay broken (counted again).
import os
import socket
import sys
import time


def serve(name, port):
    import socketserver

    class H(socketserver.StreamRequestHandler):
        def handle(self):
            try:
                for line in self.rfile:
                    self.wfile.write(name.encode() + b" " + line)
            except OSError:
                pass

    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 256

    with S(("0.0.0.0", port), H) as s:
        s.serve_forever()


def ask(sock, text):
    sock.sendall(text.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    name, _, echo = buf.decode().rstrip("\n").partition(" ")
    if echo != text:
        raise ConnectionError("bad echo " + repr(buf))
    return name


def client(addr, port, n, d, rounds):
    conns = []
    for i in range(n):
        s = socket.create_connection((addr, port), timeout=5)
        s.settimeout(5)
        conns.append(s)
    owner = [None] * n
    for r in range(rounds):
        go = os.path.join(d, "go%d" % r)
        deadline = time.time() + 120
        while not os.path.exists(go):
            if time.time() > deadline:
                sys.exit("no %s" % go)
            time.sleep(0.05)
        broken = ok = moved = 0
        count = {}
        for i, s in enumerate(conns):
            if s is None:
                broken += 1
                continue
            try:
                name = ask(s, "round %d conn %d" % (r, i))
            except OSError as e:
                print("round %d conn %d broken: %s" % (r, i, e), file=sys.stderr)
                s.close()
                conns[i] = None
                broken += 1
                continue
            if owner[i] is None:
                owner[i] = name
            elif owner[i] != name:
                moved += 1
            ok += 1
            count[name] = count.get(name, 0) + 1
        res = "broken %d ok %d moved %d backends %s\n" % (
            broken, ok, moved, " ".join("%s=%d" % kv for kv in sorted(count.items())))
        with open(os.path.join(d, "result%d.tmp" % r), "w") as f:
            f.write(res)
        os.rename(os.path.join(d, "result%d.tmp" % r), os.path.join(d, "result%d" % r))
    for s in conns:
        if s:
            s.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
