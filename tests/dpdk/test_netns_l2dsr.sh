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
build=${FL_BUILD_DIR:?}
blind=${FL_BLIND_BPF:?}
id=$$
ns_cli=fl$id-cli ns_lb=fl$id-lb ns_be=fl$id-be ns_br=fl$id-br
dir=$(mktemp -d /tmp/fl-netns-XXXXXX)
vip=10.99.100.1
dp_pid=

cleanup() {
	[ -n "$dp_pid" ] && kill "$dp_pid" 2>/dev/null && wait "$dp_pid" 2>/dev/null
	for ns in $ns_cli $ns_lb $ns_be $ns_br; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL netns_l2dsr: $*"; [ -f "$dir/dp.log" ] && tail -20 "$dir/dp.log"; exit 1; }

for ns in $ns_cli $ns_lb $ns_be $ns_br; do ip netns add "$ns"; done
ip -n $ns_br link add br0 type bridge
ip -n $ns_br link set br0 up
# host side in its namespace, bridge port in the bridge's
join() {
	local ns=$1 ifc=$2 addr=${3:-}
	ip link add "$ifc" netns "$ns" type veth peer name "p-$ifc" netns $ns_br
	ip -n $ns_br link set "p-$ifc" master br0 up
	[ -z "$addr" ] || ip -n "$ns" addr add "$addr/24" dev "$ifc"
	ip -n "$ns" link set "$ifc" up
	ip -n "$ns" link set lo up
}
join $ns_cli c0 10.99.0.2
join $ns_lb l0
ip netns exec $ns_lb tc qdisc add dev l0 clsact
ip netns exec $ns_lb tc filter add dev l0 ingress bpf da obj "$blind" sec tc
join $ns_be b0 10.99.0.3
# af_packet hands the PMD whole frames only without offloads
ip netns exec $ns_lb ethtool -K l0 rx off tx off gro off gso off tso off >/dev/null 2>&1 || true
ip netns exec $ns_cli ethtool -K c0 tx off gso off tso off >/dev/null 2>&1 || true
ip netns exec $ns_be ethtool -K b0 tx off gso off tso off >/dev/null 2>&1 || true
ip -n $ns_cli route add $vip/32 via 10.99.0.1
ip -n $ns_be addr add $vip/32 dev lo
ip netns exec $ns_be sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
be_mac=$(ip -n $ns_be -o link show b0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')

mkdir "$dir/www"
echo "backend be1" > "$dir/www/index.html"
ip netns exec $ns_be /usr/bin/python3 -m http.server 80 --bind 0.0.0.0 --directory "$dir/www" \
	>"$dir/http.log" 2>&1 &
mkdir "$dir/host"
echo "the balancer host" > "$dir/host/index.html"
ip netns exec $ns_lb /usr/bin/python3 -m http.server 2222 --bind 0.0.0.0 --directory "$dir/host" \
	>"$dir/host.log" 2>&1 &

cat > "$dir/fulcrum.conf" <<CONF
global: { shm_name = "$dir/shm"; };
limits: { max_vips = 4; max_backends = 16; ring_entries = 4096; max_workers = 2; };
dataplane: {
  mode = "dpdk";
  dpdk: {
    eal_args = [ "--no-huge", "-m", "256", "--no-pci", "-l", "0,1",
                 "--file-prefix", "fl$id", "--log-level", "lib.eal:error" ];
    ports = ( { name = "n$id"; device = "net_af_packet_n$id,iface=l0"; } );
    workers = [ 1 ];
    idle_backoff_us = 1000;
  };
  next_hop: { mac = "02:00:00:00:00:fe"; };
};
healthcheck: { type = "none"; };
vips = ( { address = "$vip"; port = 80; protocol = "tcp"; method = "l2dsr"; table_size = 251;
           backends = ( { address = "10.99.0.3"; mac = "$be_mac"; } ); } );
CONF
"$build/cp/fulcrum-tables" "$dir/fulcrum.conf" >/dev/null || fail "fulcrum-tables"
ip netns exec $ns_lb "$build/dp/fulcrum-dp" -c "$dir/fulcrum.conf" >"$dir/dp.log" 2>&1 &
dp_pid=$!
# the host's address goes on the TAP fulcrum-dp made, once it is there
tap=fl-n$id
for i in $(seq 1 40); do
	ip -n $ns_lb link show $tap >/dev/null 2>&1 && break
	kill -0 $dp_pid 2>/dev/null || fail "fulcrum-dp exited"
	sleep 0.25
done
ip -n $ns_lb addr add 10.99.0.1/24 dev $tap || fail "no exception interface $tap"
ip -n $ns_lb link set $tap up

# bounded: the server and fulcrum-dp come up within a few seconds
ok=0
for i in $(seq 1 40); do
	kill -0 $dp_pid 2>/dev/null || fail "fulcrum-dp exited"
	if ip netns exec $ns_cli curl -s --max-time 1 "http://$vip/" 2>/dev/null | grep -q "backend be1"; then
		ok=1; break
	fi
	sleep 0.25
done
[ $ok = 1 ] || fail "no answer through the VIP"
for i in $(seq 1 20); do
	out=$(ip netns exec $ns_cli curl -s --max-time 2 "http://$vip/") || fail "request $i failed"
	[ "$out" = "backend be1" ] || fail "request $i answered '$out'"
done
host=$(ip netns exec $ns_cli curl -s --max-time 2 "http://10.99.0.1:2222/") ||
	fail "the host's own TCP service is unreachable through the exception path"
[ "$host" = "the balancer host" ] || fail "host service answered '$host'"
kill -USR1 $dp_pid; sleep 0.5
exc=$(awk '$1 == "exception_packets" { v = $2 } END { print v + 0 }' "$dir/dp.log")
exc_tx=$(awk '$1 == "exception_tx_packets" { v = $2 } END { print v + 0 }' "$dir/dp.log")
[ "$exc" -gt 0 ] && [ "$exc_tx" -gt 0 ] || fail "exception path: $exc to the kernel, $exc_tx from it"
tx=$(awk '$1 == "tx_packets" { v = $2 } END { print v + 0 }' "$dir/dp.log")
[ "$tx" -ge 40 ] || fail "fulcrum-dp forwarded $tx packets for 21 connections"
echo "ok netns_l2dsr: 21 HTTP requests through the VIP, fulcrum-dp forwarded $tx packets;" \
	"host service and ARP through the TAP: $exc packets to the kernel, $exc_tx from it"
