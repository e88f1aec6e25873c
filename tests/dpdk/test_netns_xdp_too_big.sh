#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The XDP balancer's too-big answer, end to end: dataplane.mtu is 1400 on a
# 1500-byte path, so a full-sized TCP segment from the client (1500 bytes,
# DF) is 1520 in IPIP: the program drops it and answers ICMP fragmentation
# needed reporting 1380 (bpf/balancer.bpf.c too_big_answer). The client's
# kernel lowers its path MTU to the VIP and TCP carries on: 200,000 bytes
# uploaded through the VIP arrive whole. Without the answer the upload
# stalls (a black hole).
#
#   client c0 10.99.0.2 ─┐                        ┌─ b1 10.99.1.3  be1
#   balancer l0 (XDP     ├─ br0 ─ r0 router r1 ─ br1
#     native, 10.99.0.1)─┘  10.99.0.254  10.99.1.254
set -euo pipefail
FL_TEST=netns_xdp_too_big
. "$(dirname "$0")/../../scripts/lib/netns.sh"
vip=10.99.100.1
size=200000
fl_xdp_programs

fl_setup
fl_ns cli lb rt be1 br
fl_routed $vip 10.99.0.1/24
fl_xdp_peer_pass $ns_br p-l0 "$pass_bpf" || fail "XDP_PASS on p-l0"
fl_decap_backend $ns_be1 b1 10.99.1.3/24 10.99.1.254 $vip "$decap"
# a sink on :9000: reads to EOF, answers how much it read
ip netns exec $ns_be1 /usr/bin/python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen(4)
while True:
    c, _ = s.accept(); c.settimeout(20); n = 0
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            n += len(b)
        c.sendall(b"got %d\n" % n)
    except OSError:
        pass
    c.close()
' >"$fl_dir/sink.log" 2>&1 &
fl_pids+=($!)
rt_mac=$(fl_mac $ns_rt r0)

conf=$fl_dir/fulcrum.conf
fl_xdp_config "$conf" 'interfaces = [ "l0" ]; generic = false; detach_on_exit = true;' \
	"  next_hop: { mac = \"$rt_mac\"; }; tunnel_source_v4 = \"10.99.0.1\"; mtu = 1400;" \
	"{ address = \"$vip\"; port = 9000; protocol = \"tcp\"; method = \"ipip\"; table_size = 251;
    backends = ( { address = \"10.99.1.3\"; } ); }"

fl_xdp_cp_start $ns_lb "$conf" 1
ip -n $ns_cli route get $vip | grep -q 'mtu' && fail "the client knows a path MTU before the test"

# up to 5 tries: the backend's sink may still be starting
got=''
for i in 1 2 3 4 5; do
	got=$(ip netns exec $ns_cli /usr/bin/python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 9000), timeout=10)
s.sendall(b"x" * int(sys.argv[2])); s.shutdown(socket.SHUT_WR)
print(s.makefile().readline().strip())
' $vip $size 2>"$fl_dir/client.log") && [ -n "$got" ] && break
	sleep 0.5
done
[ "$got" = "got $size" ] || cp_fail "upload through the VIP: '$got' ($(tail -1 "$fl_dir/client.log"))"
pmtu=$(ip -n $ns_cli route get $vip | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
[ "$pmtu" = 1380 ] || fail "the client's path MTU to the VIP is '${pmtu:-none}', want 1380"
stats=$(ip netns exec $ns_lb "$FL_BUILD_DIR/cp/fulcrumctl" -c "$conf" --json stats) ||
	fail "fulcrumctl stats"
answers=$(python3 -c 'import json,sys; c=json.loads(sys.argv[1])["counters"]; print(c["icmp_generated"])' "$stats")
[ "$answers" -ge 1 ] || fail "icmp_generated $answers"
kill -TERM $cp_pid
wait $cp_pid 2>/dev/null || true
echo "ok netns_xdp_too_big: $size bytes uploaded through the VIP at dataplane.mtu 1400;" \
	"the XDP program answered $answers too-big segment(s), the client's path MTU became $pmtu"
