#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test_netns_l2dsr.sh with every MAC left to the neighbour table: the L2 DSR
# backend has no `mac` and the next hop is given by address. fulcrum-cp (not
# fulcrum-tables) runs in the balancer's namespace, watches the neighbour
# table of fulcrum-dp's TAP (dataplane.neighbour_interface, defaulted to
# fl-<port>), asks the kernel to resolve both addresses (an ARP that leaves
# through the exception path and the port, and whose answer comes back the
# same way) and publishes the MACs in the tables; fulcrum-dp takes them from
# there. Until then fulcrum-dp drops with no_next_hop; curl must then work.
set -euo pipefail
FL_BUILD_DIR=${FL_BUILD_DIR:?}
FL_TEST=netns_l2dsr_neigh
. "$(dirname "$0")/../../scripts/lib/netns.sh"
vip=10.99.100.1

fl_setup
fl_l2dsr_flat $vip
cli_mac=$(fl_mac $ns_cli c0)

fl_http $ns_be 80 "backend be1"

conf=$fl_dir/fulcrum.conf
fl_dp_config "$conf" l0 '  next_hop: { address = "10.99.0.2"; };' \
	"{ address = \"$vip\"; port = 80; protocol = \"tcp\"; method = \"l2dsr\"; table_size = 251;
	   backends = ( { address = \"10.99.0.3\"; } ); }"
# fulcrum-cp needs a control socket of its own
sed -i "s|^global: { |global: { control_socket = \"$fl_dir/ctl.sock\"; log_level = \"debug\"; |" "$conf"

ip netns exec $ns_lb "$FL_BUILD_DIR/cp/fulcrum-cp" -c "$conf" >"$fl_dir/cp.log" 2>&1 &
cp_pid=$!
fl_pids+=("$cp_pid")
for i in $(seq 1 40); do
	[ -S "$fl_dir/ctl.sock" ] && break
	kill -0 $cp_pid 2>/dev/null || { cat "$fl_dir/cp.log"; fail "fulcrum-cp exited"; }
	sleep 0.25
done
[ -S "$fl_dir/ctl.sock" ] || { cat "$fl_dir/cp.log"; fail "fulcrum-cp did not start"; }

fl_dp_run $ns_lb "$conf" 10.99.0.1/24
tap=fl-n$$

fl_wait_http $ns_cli "http://$vip/" "backend be1" || cp_fail "no answer through the VIP"
fl_requests $ns_cli "http://$vip/" "backend be1" 20
grep -q "resolving MACs through the neighbour table of $tap" "$fl_dir/cp.log" ||
	cp_fail "fulcrum-cp does not watch $tap"
grep -q "neighbour MAC on $tap changed: publishing" "$fl_dir/cp.log" ||
	cp_fail "fulcrum-cp never published a resolved MAC"
# the kernel learned both through the exception path
neigh=$(ip -n $ns_lb neigh show dev "$tap")
echo "$neigh" | grep -q "10.99.0.3 lladdr $be_mac" || cp_fail "backend not resolved on $tap: $neigh"
echo "$neigh" | grep -q "10.99.0.2 lladdr $cli_mac" || cp_fail "next hop not resolved on $tap: $neigh"
fl_dp_dump
tx=$(fl_dp_counter tx_packets)
[ "$tx" -ge 40 ] || fail "fulcrum-dp forwarded $tx packets for 21 connections"
echo "ok netns_l2dsr_neigh: 21 HTTP requests through the VIP with MACs from the neighbour" \
	"table (backend $be_mac, next hop $cli_mac), fulcrum-dp forwarded $tx packets"
