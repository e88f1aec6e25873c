#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# xdp mode with dataplane.xdp.fib_lookup: no next_hop in the config; the
# program asks the kernel's FIB for the outer packet's next hop. The
# balancer has two XDP interfaces: clients on l0, backends on l1, so every
# tunnelled packet leaves by another interface than it came in (a devmap
# redirect, l1 being in the program's tx_ports). The balancer's kernel has
# no neighbour entry for the backends at first: the first packets are
# dropped (no_next_hop), fulcrum-cp has the kernel resolve them, and real
# TCP then works through the VIP. Replies go from the backends through the
# balancer's kernel (XDP_PASS, forwarded) to the client.
#
#   client c0 10.99.0.2 ── br0 ── l0 10.99.0.1 [balancer] l1 10.99.1.1 ── br1 ─┬─ b1 10.99.1.3 be1
#                                                                             └─ b2 10.99.1.4 be2
set -euo pipefail
FL_TEST=netns_xdp_fib
. "$(dirname "$0")/../../scripts/lib/netns.sh"
vip=10.99.100.1
fl_xdp_programs

fl_setup
fl_ns cli lb be1 be2 br
fl_bridge $ns_br br0
fl_bridge $ns_br br1
fl_join $ns_cli c0 $ns_br br0 10.99.0.2/24
fl_join $ns_lb l0 $ns_br br0 10.99.0.1/24
fl_join $ns_lb l1 $ns_br br1 10.99.1.1/24
# bpf_fib_lookup routes only for an interface that forwards; the replies
# come from the VIP, for which the balancer has no route back
ip netns exec $ns_lb sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
	net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.l1.rp_filter=0
fl_offloads_off $ns_cli c0
# XDP_TX and redirects into a veth need an XDP program on its peer
fl_xdp_peer_pass $ns_br p-l0 "$pass_bpf" || fail "XDP_PASS on p-l0"
fl_xdp_peer_pass $ns_br p-l1 "$pass_bpf" || fail "XDP_PASS on p-l1"
ip -n $ns_cli route add $vip/32 via 10.99.0.1
fl_decap_backends $vip 10.99.1.1 2 "$decap"

conf=$fl_dir/fulcrum.conf
fl_xdp_config "$conf" \
	'interfaces = [ "l0", "l1" ]; generic = false; detach_on_exit = true; fib_lookup = true;' \
	'  tunnel_source_v4 = "10.99.1.1";' \
	"{ address = \"$vip\"; port = 80; protocol = \"tcp\"; method = \"ipip\"; table_size = 251;
	   backends = ( { address = \"10.99.1.3\"; }, { address = \"10.99.1.4\"; } ); }"
ip -n $ns_lb neigh show dev l1 | grep -q '10.99.1.[34] .*lladdr' &&
	fail "the balancer knows a backend's MAC before the test"

fl_xdp_cp_start $ns_lb "$conf" 2

fl_wait_http $ns_cli "http://$vip/" "backend be[12]" || cp_fail "no answer through the VIP"
seen=''
for i in $(seq 1 30); do
	out=$(ip netns exec $ns_cli curl -s --max-time 2 "http://$vip/") || cp_fail "request $i failed"
	[[ $out =~ ^backend\ be[12]$ ]] || cp_fail "request $i answered '$out'"
	seen="$seen ${out#backend }"
done
grep -q 'xdp: next hop 10.99.1.[34] on l1 has no neighbour entry .*asking the kernel to resolve it' \
	"$fl_dir/cp.log" || cp_fail "fulcrum-cp did not have a backend resolved"
[[ $seen == *be1* && $seen == *be2* ]] || fail "30 requests did not reach both backends:$seen"
kill -TERM $cp_pid
wait $cp_pid 2>/dev/null || true
echo "ok netns_xdp_fib: xdp.fib_lookup, no next_hop: 30 HTTP requests through the VIP, redirected" \
	"from l0 to l1 with the FIB's MACs, both backends resolved on fulcrum-cp's request"
