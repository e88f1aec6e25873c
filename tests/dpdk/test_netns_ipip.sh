#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# IPIP end to end, through a router: fulcrum-dp (net_af_packet on the
# balancer's veth, its kernel blind there) encapsulates the client's packets
# toward the backend's address and hands them to the router's MAC; the
# router forwards the outer packets into the backend's subnet; the backend,
# whose kernel has no ipip driver, decapsulates with fulcrum-decap (tc) and
# answers from the VIP on lo straight to the client, back through the router.
#
#   client c0 10.99.0.2 ─┐                       ┌─ b0 10.99.1.3 backend
#   balancer l0 (TAP     ├─ br0 ─ r0 router r1 ─ br1   VIP 10.99.100.1 on lo
#     10.99.0.1)        ─┘  10.99.0.254  10.99.1.254   fulcrum-decap on b0
#
# A router rather than one shared L2: the outer packet must be a real routed
# IPv4 packet (TTL, header checksum checked by a kernel on the way) and the
# backend's answer must take the backend's own route, not the balancer's.
# Last, detaching fulcrum-decap must stop the service: nothing else here
# could have decapsulated. Every address is inside namespaces this script
# makes.
set -euo pipefail
FL_BUILD_DIR=${FL_BUILD_DIR:?}
blind=${FL_BLIND_BPF:?}
decap=${FL_DECAP:-$FL_BUILD_DIR/bpf/fulcrum-decap}
FL_TEST=netns_ipip
. "$(dirname "$0")/../../scripts/lib/netns.sh"
vip=10.99.100.1
[ -x "$decap" ] || { echo "FAIL $FL_TEST: no fulcrum-decap at $decap (set FL_DECAP)"; exit 1; }

fl_setup
fl_ns cli lb rt be br
fl_routed $vip
fl_blind $ns_lb l0 "$blind"
fl_offloads_off $ns_lb l0 rx tx gro gso tso
fl_decap_backend $ns_be b0 10.99.1.3/24 10.99.1.254 $vip "$decap"
rt_mac=$(fl_mac $ns_rt r0)

fl_http $ns_be 80 "backend be1"
be_log=$fl_http_log

fl_dp_config "$fl_dir/fulcrum.conf" l0 "  next_hop: { mac = \"$rt_mac\"; };
  tunnel_source_v4 = \"10.99.0.1\";" \
	"{ address = \"$vip\"; port = 80; protocol = \"tcp\"; method = \"ipip\"; table_size = 251;
	   backends = ( { address = \"10.99.1.3\"; } ); }"
fl_dp_start $ns_lb "$fl_dir/fulcrum.conf" 10.99.0.1/24

fl_wait_http $ns_cli "http://$vip/" "backend be1"
fl_requests $ns_cli "http://$vip/" "backend be1" 20

# the backend's count first: a late packet of a closing connection may
# still pass, and what the backend counted was sent before fulcrum-dp's dump
ip netns exec $ns_be "$decap" stats b0 >"$fl_dir/decap.stats" || fail "fulcrum-decap stats"
fl_dp_dump
tx=$(fl_dp_counter tx_packets)
stat() { awk -v n="$1" '$1 == n { print $2 }' "$fl_dir/decap.stats"; }
decapped=$(stat decap_ipip)
drops=$(awk '$1 ~ /^drop_/ { s += $2 } END { print s + 0 }' "$fl_dir/decap.stats")
# the backend saw the client's own address: the inner packet arrived whole
seen=$(grep -c '^10\.99\.0\.2 .*"GET / ' "$be_log" || true)
[ "$decapped" -ge 40 ] || fail "the backend decapsulated $decapped IPIP packets for 21 connections"
[ "$drops" = 0 ] || fail "fulcrum-decap dropped $drops packets: $(grep '^drop_' "$fl_dir/decap.stats")"
[ "$tx" -ge "$decapped" ] || fail "fulcrum-decap counted $decapped packets, fulcrum-dp sent $tx"
[ "$seen" -ge 21 ] || fail "the backend logged $seen requests from 10.99.0.2"

# without the program the backend's kernel cannot open the tunnel
ip netns exec $ns_be "$decap" detach b0 >/dev/null || fail "fulcrum-decap detach"
if ip netns exec $ns_cli curl -s --max-time 2 "http://$vip/" >/dev/null 2>&1; then
	fail "the VIP still answers with fulcrum-decap detached"
fi
echo "ok netns_ipip: 21 HTTP requests through the VIP by IPIP via a router;" \
	"fulcrum-dp sent $tx packets, fulcrum-decap decapsulated $decapped and dropped 0;" \
	"the backend saw $seen requests from the client's address; none answered once detached"
