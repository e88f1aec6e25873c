# shellcheck shell=bash
# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the namespace tests (tests/dpdk/test_netns_*.sh) and by
# scripts/lab: network namespaces with a trap that takes them down, veths
# joined to bridges, the kernel-blind tc program, fulcrum-dp and
# fulcrum-tables on a config, HTTP servers. Every name carries the caller's
# pid (or FL_NS_PREFIX), every address lives inside namespaces made here,
# every wait is bounded, and cleanup kills only what was started here.
#
# The tests set `set -euo pipefail` and FL_TEST (its name, for messages),
# then call fl_setup before anything else. scripts/lab uses only the
# topology helpers (fl_ns with FL_NS_PREFIX, fl_bridge, fl_join,
# fl_offloads_off, fl_blind, fl_mac, and for the XDP data plane
# fl_xdp_peer_pass, fl_bpffs_mount) and keeps its own state on
# disk.

fl_dir='' fl_dp_pid='' fl_http_log='' fl_pids=() fl_nss=()

# Prints why, the end of fulcrum-dp's log when there is one, and exits 1
# (the trap cleans up).
fail() {
	echo "FAIL $FL_TEST: $*"
	[ -n "$fl_dir" ] && [ -f "$fl_dir/dp.log" ] && tail -20 "$fl_dir/dp.log"
	exit 1
}

fl_cleanup() {
	local pid ns
	# deleting a namespace does not end its processes: end ours by pid
	for pid in $fl_dp_pid "${fl_pids[@]}"; do
		{ kill "$pid" && wait "$pid"; } 2>/dev/null || true
	done
	for ns in "${fl_nss[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	[ -n "$fl_dir" ] && rm -rf "$fl_dir"
	return 0
}

# fl_setup: a scratch directory ($fl_dir) and the trap.
fl_setup() {
	fl_dir=$(mktemp -d /tmp/fl-netns-XXXXXX)
	trap fl_cleanup EXIT
}

# fl_ns NAME...: makes namespace fl<pid>-NAME (FL_NS_PREFIX-NAME when set)
# for each NAME and sets the variable ns_NAME to it, loopback up.
fl_ns() {
	local n ns
	for n in "$@"; do
		ns=${FL_NS_PREFIX:-fl$$}-$n
		ip netns add "$ns"
		fl_nss+=("$ns")
		ip -n "$ns" link set lo up
		printf -v "ns_$n" '%s' "$ns"
	done
}

# fl_bridge NS BRIDGE: a bridge, up, in namespace NS.
fl_bridge() {
	ip -n "$1" link add "$2" type bridge
	ip -n "$1" link set "$2" up
}

# fl_join NS IFC BRNS BRIDGE [ADDR/PREFIX]: a veth IFC in NS whose peer
# p-IFC is a port of BRIDGE in BRNS; IFC up, with ADDR when given.
fl_join() {
	local ns=$1 ifc=$2 brns=$3 br=$4 addr=${5:-}
	ip link add "$ifc" netns "$ns" type veth peer name "p-$ifc" netns "$brns"
	ip -n "$brns" link set "p-$ifc" master "$br" up
	[ -z "$addr" ] || ip -n "$ns" addr add "$addr" dev "$ifc"
	ip -n "$ns" link set "$ifc" up
}

# fl_xdp_programs: what the XDP namespace tests run, from meson's
# environment: $decap (fulcrum-decap), $cpbin (fulcrum-cp), $pass_bpf (the
# XDP_PASS object for fl_xdp_peer_pass); a missing one fails the test.
fl_xdp_programs() {
	decap=${FL_DECAP:-${FL_BUILD_DIR:?}/bpf/fulcrum-decap}
	cpbin=${FL_CP:-$FL_BUILD_DIR/cp/fulcrum-cp}
	pass_bpf=${FL_XDP_PASS_BPF:?}
	[ -x "$decap" ] || { echo "FAIL $FL_TEST: no fulcrum-decap at $decap (set FL_DECAP)"; exit 1; }
	[ -x "$cpbin" ] || { echo "FAIL $FL_TEST: no fulcrum-cp at $cpbin (set FL_CP)"; exit 1; }
}

# fl_xdp_cp_start NS CONF N: fulcrum-cp ($cpbin) in NS on CONF, its log in
# $fl_dir/cp.log, its pid in $cp_pid (ended by the cleanup), without pins
# (FULCRUM_BPFFS empty); waits up to 10 s until it has attached the XDP
# balancer to N interfaces. cp_fail: fail with the end of its log.
cp_fail() { echo "--- fulcrum-cp log"; tail -30 "$fl_dir/cp.log"; fail "$@"; }
fl_xdp_cp_start() {
	local i
	FULCRUM_BPFFS= ip netns exec "$1" "$cpbin" -c "$2" >"$fl_dir/cp.log" 2>&1 &
	cp_pid=$!
	fl_pids+=("$cp_pid")
	for i in $(seq 1 40); do
		[ "$(grep -c 'xdp: attached to ' "$fl_dir/cp.log")" -ge "$3" ] && return 0
		kill -0 "$cp_pid" 2>/dev/null || cp_fail "fulcrum-cp exited"
		sleep 0.25
	done
	cp_fail "fulcrum-cp did not attach to $3 interface(s)"
}

# fl_routed VIP [LB_ADDR]: the tunnel tests' network, in the namespaces of
# `fl_ns cli lb rt br`: bridge br0 holds the client's c0 (10.99.0.2), the
# balancer's l0 (LB_ADDR when given) and the router's r0 (10.99.0.254);
# bridge br1 the router's r1 (10.99.1.254), for the backends. The router
# forwards without a reverse-path filter (the backends answer from the VIP,
# which it has no route for); the client sends whole segments with whole
# checksums (no offloads) and routes the VIP to 10.99.0.1.
fl_routed() {
	fl_bridge "$ns_br" br0
	fl_bridge "$ns_br" br1
	ip netns exec "$ns_rt" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0
	fl_join "$ns_cli" c0 "$ns_br" br0 10.99.0.2/24
	fl_join "$ns_lb" l0 "$ns_br" br0 "${2:-}"
	fl_join "$ns_rt" r0 "$ns_br" br0 10.99.0.254/24
	fl_join "$ns_rt" r1 "$ns_br" br1 10.99.1.254/24
	fl_offloads_off "$ns_cli" c0
	ip -n "$ns_cli" route add "$1/32" via 10.99.0.1
}

# fl_l2dsr_flat VIP: the L2 DSR tests' network, in namespaces cli lb be br
# made here: one bridge br0 with the client's c0 (10.99.0.2, the VIP routed
# to 10.99.0.1), the balancer's l0 (no address: the kernel is blind there,
# by the tc program $FL_BLIND_BPF; fulcrum-dp's port, offloads off) and the
# backend's b0 (10.99.0.3, the VIP on lo, not answering ARP for it, its MAC
# in $be_mac).
fl_l2dsr_flat() {
	local blind=${FL_BLIND_BPF:?}
	fl_ns cli lb be br
	fl_bridge "$ns_br" br0
	fl_join "$ns_cli" c0 "$ns_br" br0 10.99.0.2/24
	fl_join "$ns_lb" l0 "$ns_br" br0
	fl_blind "$ns_lb" l0 "$blind"
	fl_join "$ns_be" b0 "$ns_br" br0 10.99.0.3/24
	fl_offloads_off "$ns_lb" l0 rx tx gro gso tso
	fl_offloads_off "$ns_cli" c0
	fl_offloads_off "$ns_be" b0
	ip -n "$ns_cli" route add "$1/32" via 10.99.0.1
	ip -n "$ns_be" addr add "$1/32" dev lo
	ip netns exec "$ns_be" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
	be_mac=$(fl_mac "$ns_be" b0)
}

# fl_decap_backend NS IFC ADDR GATEWAY VIP DECAP: a backend on bridge br1
# whose kernel has no tunnel driver: IFC with ADDR, default route by
# GATEWAY, the VIP on lo (not answering ARP for it), and fulcrum-decap
# (the binary DECAP) stripping the tunnel on IFC.
fl_decap_backend() {
	local ns=$1 ifc=$2
	fl_join "$ns" "$ifc" "$ns_br" br1 "$3"
	fl_offloads_off "$ns" "$ifc"
	ip -n "$ns" route add default via "$4"
	ip -n "$ns" addr add "$5/32" dev lo
	ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
	ip netns exec "$ns" "$6" attach "$ifc" >"$fl_dir/decap-$ifc.log" 2>&1 ||
		fail "fulcrum-decap attach $ifc: $(cat "$fl_dir/decap-$ifc.log")"
}

# fl_decap_backends VIP GATEWAY N DECAP: fl_decap_backend for be1..beN
# (namespaces ns_be1..ns_beN), IFC b<i> at 10.99.1.(i + 2), each with an
# HTTP server on port 80 answering "backend be<i>".
fl_decap_backends() {
	local i ns
	for i in $(seq 1 "$3"); do
		ns=ns_be$i
		fl_decap_backend "${!ns}" "b$i" "10.99.1.$((i + 2))/24" "$2" "$1" "$4"
		fl_http "${!ns}" 80 "backend be$i"
	done
}

# fl_offloads_off NS IFC [FEATURE...]: af_packet hands fulcrum-dp whole
# frames with real checksums only without these offloads.
fl_offloads_off() {
	local ns=$1 ifc=$2 f args=()
	shift 2
	[ $# -gt 0 ] || set -- tx gso tso
	for f in "$@"; do args+=("$f" off); done
	ip netns exec "$ns" ethtool -K "$ifc" "${args[@]}" >/dev/null 2>&1 || true
}

# fl_blind NS IFC BPF_OBJ: the kernel of NS stops seeing what IFC receives
# (kernel_blind.bpf.c on tc ingress); packet sockets still do.
fl_blind() {
	ip netns exec "$1" tc qdisc add dev "$2" clsact
	ip netns exec "$1" tc filter add dev "$2" ingress bpf da obj "$3" sec tc
}

# fl_xdp_peer_pass NS IFC BPF_OBJ: a native XDP_PASS program
# (tests/dpdk/xdp_pass.bpf.c) on IFC, the peer of a veth whose XDP program
# answers XDP_TX. XDP_TX on a veth hands the frame to the peer's NAPI ring,
# which the peer has only with an XDP program of its own: on this machine's
# kernel (6.18) GRO on the peer was not enough, the frames vanished.
fl_xdp_peer_pass() {
	ip -n "$1" link set dev "$2" xdpdrv obj "$3" sec xdp
}

# fl_bpffs_mount DIR: a bpffs at DIR (made) in the host's mount namespace,
# unless one is there. `ip netns exec` gives each command a fresh /sys, so
# the pins of fulcrum-cp's XDP maps outlive it only on a bpffs like this
# one, passed as FULCRUM_BPFFS=DIR (see cp/xdp_mode.h). Unmount it after.
fl_bpffs_mount() {
	mkdir -p "$1"
	[ "$(stat -f -c %T "$1" 2>/dev/null)" = bpf_fs ] || mount -t bpf bpf "$1"
}

# fl_mac NS IFC: prints the MAC of IFC.
fl_mac() {
	ip -n "$1" -o link show "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

# fl_http NS PORT TEXT: an HTTP server in NS on PORT answering TEXT; its
# access log (client addresses) is $fl_http_log.
fl_http() {
	local ns=$1 port=$2 www
	www=$(mktemp -d "$fl_dir/www-XXXXXX")
	echo "$3" >"$www/index.html"
	fl_http_log=$www.log
	ip netns exec "$ns" /usr/bin/python3 -m http.server "$port" --bind 0.0.0.0 \
		--directory "$www" >"$fl_http_log" 2>&1 &
	fl_pids+=($!)
}

# fl_dp_config FILE IFACE DATAPLANE_EXTRA VIPS: a fulcrum config for one
# fulcrum-dp port (net_af_packet over IFACE, one worker, --no-huge) with
# DATAPLANE_EXTRA inside `dataplane` (next_hop, tunnel sources) and VIPS as
# the vips list's body.
fl_dp_config() {
	cat >"$1" <<CONF
global: { shm_name = "$fl_dir/shm"; };
limits: { max_vips = 4; max_backends = 16; ring_entries = 4096; max_workers = 2; };
dataplane: {
  mode = "dpdk";
  dpdk: {
    eal_args = [ "--no-huge", "-m", "256", "--no-pci", "-l", "0,1",
                 "--file-prefix", "fl$$", "--log-level", "lib.eal:error" ];
    ports = ( { name = "n$$"; device = "net_af_packet_n$$,iface=$2"; } );
    workers = [ 1 ];
    idle_backoff_us = 1000;
  };
$3
};
healthcheck: { type = "none"; };
vips = ( $4 );
CONF
}

# fl_xdp_config FILE XDP DATAPLANE_EXTRA VIPS: a fulcrum-cp config for xdp
# mode with a control socket, XDP inside `dataplane.xdp` (interfaces,
# knobs), DATAPLANE_EXTRA inside `dataplane` (next hop, tunnel source) and
# VIPS as the vips list's body.
fl_xdp_config() {
	cat >"$1" <<CONF
global: { shm_name = "$fl_dir/shm"; control_socket = "$fl_dir/ctl.sock"; };
limits: { max_vips = 4; max_backends = 16; ring_entries = 4096; max_workers = 2; };
dataplane: {
  mode = "xdp";
  xdp: { $2 };
$3
  conntrack: { capacity = 4096; };
};
healthcheck: { type = "none"; };
vips = ( $4 );
CONF
}

# fl_dp_start NS CONF HOST_ADDR/PREFIX: publishes the tables with
# fulcrum-tables, then fl_dp_run.
fl_dp_start() {
	"$FL_BUILD_DIR/cp/fulcrum-tables" "$2" >/dev/null || fail "fulcrum-tables"
	fl_dp_run "$@"
}

# fl_dp_run NS CONF HOST_ADDR/PREFIX: starts fulcrum-dp in NS on tables
# published already (or by fulcrum-cp), and puts the balancer host's own
# address on the TAP it makes (fl-n<pid>): the host is reachable only
# through the exception path.
fl_dp_run() {
	local ns=$1 conf=$2 addr=$3 tap=fl-n$$ i
	ip netns exec "$ns" "$FL_BUILD_DIR/dp/fulcrum-dp" -c "$conf" >"$fl_dir/dp.log" 2>&1 &
	fl_dp_pid=$!
	for i in $(seq 1 40); do
		ip -n "$ns" link show "$tap" >/dev/null 2>&1 && break
		kill -0 "$fl_dp_pid" 2>/dev/null || fail "fulcrum-dp exited"
		sleep 0.25
	done
	ip -n "$ns" addr add "$addr" dev "$tap" || fail "no exception interface $tap"
	ip -n "$ns" link set "$tap" up
}

# fl_dp_alive: fails unless fulcrum-dp still runs.
fl_dp_alive() {
	kill -0 "$fl_dp_pid" 2>/dev/null || fail "fulcrum-dp exited"
}

# fl_dp_counter NAME: fulcrum-dp's latest value of counter NAME, after
# fl_dp_dump.
fl_dp_counter() {
	awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }' "$fl_dir/dp.log"
}

# fl_dp_dump: fulcrum-dp writes its counters to its log (SIGUSR1).
fl_dp_dump() {
	kill -USR1 "$fl_dp_pid"
	sleep 0.5
}

# fl_wait_http NS URL TEXT: waits (10 s at most) until URL answers TEXT.
fl_wait_http() {
	local i
	for i in $(seq 1 40); do
		[ -z "$fl_dp_pid" ] || fl_dp_alive
		if ip netns exec "$1" curl -s --max-time 1 "$2" 2>/dev/null | grep -qx "$3"; then
			return 0
		fi
		sleep 0.25
	done
	fail "no answer '$3' from $2"
}

# fl_requests NS URL TEXT N: N requests, each must answer TEXT.
fl_requests() {
	local i out
	for i in $(seq 1 "$4"); do
		out=$(ip netns exec "$1" curl -s --max-time 2 "$2") || fail "request $i to $2 failed"
		[ "$out" = "$3" ] || fail "request $i to $2 answered '$out'"
	done
}
