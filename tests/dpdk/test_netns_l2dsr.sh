#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A real TCP connection through fulcrum-dp: client, balancer and backend in
# network namespaces on one bridge; fulcrum-dp on net_af_packet over the
# balancer's veth; L2 DSR to a backend that has the VIP on lo and answers the
# client directly. The balancer's kernel is blind on that veth (a tc program
# drops what it would receive), so its own address lives on fulcrum-dp's TAP:
# ARP and a TCP service of the host (as SSH would be) work only through the
# exception path. Every address is inside namespaces this script makes.
set -euo pipefail
FL_BUILD_DIR=${FL_BUILD_DIR:?}
FL_TEST=netns_l2dsr
. "$(dirname "$0")/../../scripts/lib/netns.sh"
vip=10.99.100.1

fl_setup
fl_l2dsr_flat $vip

fl_http $ns_be 80 "backend be1"
fl_http $ns_lb 2222 "the balancer host"

fl_dp_config "$fl_dir/fulcrum.conf" l0 '  next_hop: { mac = "02:00:00:00:00:fe"; };' \
	"{ address = \"$vip\"; port = 80; protocol = \"tcp\"; method = \"l2dsr\"; table_size = 251;
	   backends = ( { address = \"10.99.0.3\"; mac = \"$be_mac\"; } ); }"
fl_dp_start $ns_lb "$fl_dir/fulcrum.conf" 10.99.0.1/24

fl_wait_http $ns_cli "http://$vip/" "backend be1"
fl_requests $ns_cli "http://$vip/" "backend be1" 20
host=$(ip netns exec $ns_cli curl -s --max-time 2 "http://10.99.0.1:2222/") ||
	fail "the host's own TCP service is unreachable through the exception path"
[ "$host" = "the balancer host" ] || fail "host service answered '$host'"
fl_dp_dump
exc=$(fl_dp_counter exception_packets)
exc_tx=$(fl_dp_counter exception_tx_packets)
[ "$exc" -gt 0 ] && [ "$exc_tx" -gt 0 ] || fail "exception path: $exc to the kernel, $exc_tx from it"
tx=$(fl_dp_counter tx_packets)
[ "$tx" -ge 40 ] || fail "fulcrum-dp forwarded $tx packets for 21 connections"
echo "ok netns_l2dsr: 21 HTTP requests through the VIP, fulcrum-dp forwarded $tx packets;" \
	"host service and ARP through the TAP: $exc packets to the kernel, $exc_tx from it"
