#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test_netns_xdp.sh's topology with the next hop given by address: the XDP
# config has next_hop.address (the router), no MAC. fulcrum-cp watches the
# neighbour table of the XDP interface (dataplane.neighbour_interface,
# defaulted to the only one), asks the kernel to resolve the router (its
# ARP leaves by l0; the answer comes back through the program's XDP_PASS)
# and publishes the MAC with the tables; the program takes it from there
# (bpf/xdp.h, slot_meta). Real TCP must then work through the VIP. Then the
# router's MAC changes and the balancer's kernel learns it: fulcrum-cp
# republishes and TCP works again, to the new MAC.
#
#   client c0 10.99.0.2 ─┐                        ┌─ b1 10.99.1.3  be1
#   balancer l0 (XDP     ├─ br0 ─ r0 router r1 ─ br1
#     native, 10.99.0.1)─┘  10.99.0.254  10.99.1.254 └─ b2 10.99.1.4  be2
set -euo pipefail
FL_TEST=netns_xdp_neigh
. "$(dirname "$0")/../../scripts/lib/netns.sh"
vip=10.99.100.1
router=10.99.0.254
fl_xdp_programs

fl_setup
fl_ns cli lb rt be1 be2 br
fl_routed $vip 10.99.0.1/24
fl_xdp_peer_pass $ns_br p-l0 "$pass_bpf" || fail "XDP_PASS on p-l0"
fl_decap_backends $vip 10.99.1.254 2 "$decap"
rt_mac=$(fl_mac $ns_rt r0)

conf=$fl_dir/fulcrum.conf
fl_xdp_config "$conf" 'interfaces = [ "l0" ]; generic = false; detach_on_exit = true;' \
	"  next_hop: { address = \"$router\"; };
  tunnel_source_v4 = \"10.99.0.1\";" \
	"{ address = \"$vip\"; port = 80; protocol = \"tcp\"; method = \"ipip\"; table_size = 251;
	   backends = ( { address = \"10.99.1.3\"; }, { address = \"10.99.1.4\"; } ); }"
# debug level: cp.log tells the neighbour story when a check fails
sed -i "s|^global: { |global: { log_level = \"debug\"; |" "$conf"

# with neither next_hop.address nor next_hop.mac, an ipip VIP is refused
sed '/next_hop:/d' "$conf" >"$fl_dir/no_hop.conf"
if FULCRUM_BPFFS= timeout 10 ip netns exec $ns_lb "$cpbin" -c "$fl_dir/no_hop.conf" \
	>"$fl_dir/no_hop.log" 2>&1; then
	fail "fulcrum-cp started with a tunnel VIP and no next hop"
fi
grep -q "uses ipip, but dataplane has no next_hop" "$fl_dir/no_hop.log" ||
	fail "no clear error without a next hop: $(tail -3 "$fl_dir/no_hop.log")"
fl_xdp_cp_start $ns_lb "$conf" 1

# requests: 20 through the VIP, each answered by a backend
requests() {
	local i out
	for i in $(seq 1 20); do
		out=$(ip netns exec $ns_cli curl -s --max-time 2 "http://$vip/") ||
			cp_fail "$1: request $i failed"
		[[ $out =~ ^backend\ be[12]$ ]] || cp_fail "$1: request $i answered '$out'"
	done
}
fl_wait_http $ns_cli "http://$vip/" "backend be[12]" || cp_fail "no answer through the VIP"
requests "resolved"
grep -q "resolving MACs through the neighbour table of l0" "$fl_dir/cp.log" ||
	cp_fail "fulcrum-cp does not watch l0"
grep -q "neighbour MAC on l0 changed: publishing" "$fl_dir/cp.log" ||
	cp_fail "fulcrum-cp never published a resolved MAC"
neigh=$(ip -n $ns_lb neigh show dev l0)
echo "$neigh" | grep -q "$router lladdr $rt_mac" || cp_fail "router not resolved on l0: $neigh"

# the router's MAC changes; the balancer's kernel learns the new one (as a
# gratuitous ARP would teach it); fulcrum-cp republishes
new_mac=02:00:00:00:4e:fe
pubs=$(grep -c 'neighbour MAC on l0 changed: publishing' "$fl_dir/cp.log")
ip -n $ns_rt link set r0 address $new_mac
ip -n $ns_lb neigh replace $router lladdr $new_mac dev l0 nud reachable
for i in $(seq 1 40); do
	[ "$(grep -c 'neighbour MAC on l0 changed: publishing' "$fl_dir/cp.log")" -gt "$pubs" ] && break
	sleep 0.25
done
[ "$(grep -c 'neighbour MAC on l0 changed: publishing' "$fl_dir/cp.log")" -gt "$pubs" ] ||
	cp_fail "no publish after the router's MAC changed"
requests "new router MAC"

kill -TERM $cp_pid
wait $cp_pid 2>/dev/null || true
echo "ok netns_xdp_neigh: xdp mode with next_hop.address: 40 HTTP requests through the VIP" \
	"to the router's MAC from the neighbour table ($rt_mac, then $new_mac after a change)"
