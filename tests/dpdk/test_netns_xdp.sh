#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# fulcrum-cp in xdp mode, end to end: it loads the XDP balancer, attaches it
# natively to the balancer's veth and publishes its tables into the maps;
# the balancer wraps the client's packets in IPIP toward a backend via the
# router; backends decapsulate with fulcrum-decap and answer from the VIP on
# lo straight to the client.
#
#   client c0 10.99.0.2 ─┐                        ┌─ b1 10.99.1.3  be1
#   balancer l0 (XDP     ├─ br0 ─ r0 router r1 ─ br1 ─ b2 10.99.1.4  be2
#     native, 10.99.0.1)─┘  10.99.0.254  10.99.1.254 └─ b3 10.99.1.5  be3 (added by SIGHUP)
#   each backend: VIP 10.99.100.1 on lo, fulcrum-decap on bN, an HTTP server
#   on :80 and a line echo server on :9000 (xdp_conns.py)
#
# XDP_TX on a veth: the frame is handed to the peer's NAPI ring, which
# exists only when the peer has an XDP program (or, by the kernel's
# documentation since 5.13, GRO on). On this machine's kernel (6.18) GRO on
# the peer was not enough: the balancer counted xdp_tx, no error anywhere,
# and the frames never appeared on the peer. So the peer p-l0, a bridge
# port, gets a native XDP_PASS program (xdp_pass.bpf.c, FL_XDP_PASS_BPF).
#
# Then 20 long-lived connections to VIP:9000 must survive, every one:
#   round 0 baseline; SIGHUP adding be3 (the Maglev ring moves about a third
#   of the hash space to be3: only conntrack keeps those flows); kill -9 of
#   fulcrum-cp (the program keeps forwarding, fail static); a restart that
#   reuses the pinned maps (FULCRUM_BPFFS, a bpffs this script mounts in the
#   host's mount namespace, visible inside `ip netns exec`); a second kill -9
#   and a restart without FULCRUM_BPFFS (fulcrum-cp mounts a bpffs on the
#   namespace's private /sys/fs/bpf, finds no pins, and adopts the maps of
#   the attached program). Each restart must keep the attached program.
set -euo pipefail
FL_TEST=netns_xdp
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/netns.sh"
conns="$here/xdp_conns.py"
vip=10.99.100.1
N=20
fl_xdp_programs

cp_pid='' client_pid='' bpffs=''
xdp_cleanup() {
	for pid in $cp_pid $client_pid; do
		{ kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true
	done
	[ -z "$bpffs" ] || umount "$bpffs" 2>/dev/null || true
	fl_cleanup	# the namespaces go, and with l0 the attached program
}
fl_setup
trap xdp_cleanup EXIT
fail_cp() {
	tail -30 "$fl_dir/cp.log" 2>/dev/null || true
	fail "$@"
}

fl_ns cli lb rt be1 be2 be3 br
# the client's TCP checksums must be whole: XDP forwards the frame as is
fl_routed $vip 10.99.0.1/24
# XDP_TX on veth: see fl_xdp_peer_pass in scripts/lib/netns.sh. No RPS pin:
# a veth has no RSS and the program runs on the sending CPU, so a flow's
# packets meet both CPUs, which share one conntrack: they keep their backend
fl_xdp_peer_pass $ns_br p-l0 "$pass_bpf" || fail "XDP_PASS on p-l0"
for i in 1 2 3; do
	ns=fl$$-be$i
	[ -z "${FL_NS_PREFIX:-}" ] || ns=$FL_NS_PREFIX-be$i
	fl_decap_backend $ns b$i 10.99.1.$((i + 2))/24 10.99.1.254 $vip "$decap"
	fl_http $ns 80 "backend be$i"
	ip netns exec $ns /usr/bin/python3 "$conns" serve be$i 9000 >"$fl_dir/echo$i.log" 2>&1 &
	fl_pids+=($!)
done
rt_mac=$(fl_mac $ns_rt r0)

# conf FILE BACKENDS: the fulcrum-cp config, xdp mode on l0
backend() { echo "{ address = \"10.99.1.$(($1 + 2))\"; }"; }
conf() {
	local bes=$2
	fl_xdp_config "$1" 'interfaces = [ "l0" ]; generic = false; detach_on_exit = false;' \
		"  next_hop: { mac = \"$rt_mac\"; }; tunnel_source_v4 = \"10.99.0.1\";" \
		"{ address = \"$vip\"; port = 80; protocol = \"tcp\"; method = \"ipip\"; table_size = 251;
    backends = ( $bes ); },
  { address = \"$vip\"; port = 9000; protocol = \"tcp\"; method = \"ipip\"; table_size = 251;
    backends = ( $bes ); }"
}
conf "$fl_dir/fulcrum.conf" "$(backend 1), $(backend 2)"

# cp_start [ENV...]: fulcrum-cp in the balancer namespace, until it attached
cp_start() {
	local mark i
	mark=$(grep -c 'xdp: \(attached\|kept\|replaced\)' "$fl_dir/cp.log" 2>/dev/null || true)
	ip netns exec $ns_lb env "$@" "$cpbin" -c "$fl_dir/fulcrum.conf" >>"$fl_dir/cp.log" 2>&1 &
	cp_pid=$!
	for i in $(seq 1 40); do
		[ "$(grep -c 'xdp: \(attached\|kept\|replaced\)' "$fl_dir/cp.log" || true)" -gt "${mark:-0}" ] &&
			return 0
		kill -0 $cp_pid 2>/dev/null || fail_cp "fulcrum-cp exited"
		sleep 0.25
	done
	fail_cp "fulcrum-cp did not attach"
}
cp_kill9() {
	kill -9 $cp_pid
	wait $cp_pid 2>/dev/null || true
	cp_pid=''
}
# round R: every connection sends a line; prints the result line
round() {
	local i
	touch "$fl_dir/go$1"
	for i in $(seq 1 200); do
		[ -f "$fl_dir/result$1" ] && { cat "$fl_dir/result$1"; return 0; }
		kill -0 $client_pid 2>/dev/null || fail "the connection client exited"
		sleep 0.1
	done
	fail "round $1 did not finish"
}
broken_of() { awk '{ print $2 }' <<<"$1"; }

bpffs=$fl_dir/bpffs
fl_bpffs_mount "$bpffs" || fail "mount bpffs at $bpffs"
cp_start FULCRUM_BPFFS="$bpffs"
ip -n $ns_lb link show l0 | grep -q 'xdp ' || ip -n $ns_lb link show l0 | grep -q 'prog/xdp' ||
	fail "no XDP program on l0: $(ip -n $ns_lb link show l0)"
ip -n $ns_lb link show l0 | grep -q xdpgeneric && fail "attached in generic mode"

# 20 requests through the VIP, each answered by a backend
fl_wait_http $ns_cli "http://$vip/" "backend be[12]"
for i in $(seq 1 20); do
	out=$(ip netns exec $ns_cli curl -s --max-time 2 "http://$vip/") || fail "request $i failed"
	[[ $out =~ ^backend\ be[12]$ ]] || fail "request $i answered '$out'"
done

ip netns exec $ns_cli /usr/bin/python3 "$conns" client $vip 9000 $N "$fl_dir" 7 \
	2>"$fl_dir/client.log" &
client_pid=$!
r0=$(round 0)

# a new backend by SIGHUP while the connections are open
conf "$fl_dir/fulcrum.conf" "$(backend 1), $(backend 2), $(backend 3)"
pubs=$(grep -c 'published generation' "$fl_dir/cp.log")
kill -HUP $cp_pid
for i in $(seq 1 40); do
	[ "$(grep -c 'published generation' "$fl_dir/cp.log")" -gt "$pubs" ] && break
	sleep 0.25
done
[ "$(grep -c 'published generation' "$fl_dir/cp.log")" -gt "$pubs" ] || fail_cp "no publish after SIGHUP"
r1=$(round 1)
# new connections reach be3
seen3=0
for i in $(seq 1 30); do
	out=$(ip netns exec $ns_cli curl -s --max-time 2 "http://$vip/") || fail "request after SIGHUP failed"
	[ "$out" = "backend be3" ] && seen3=$((seen3 + 1))
done
[ $seen3 -gt 0 ] || fail "no new connection went to be3 after the SIGHUP"

# kill -9: the attached program keeps forwarding (fail static)
cp_kill9
r2=$(round 2)
# restart on the pinned maps
cp_start FULCRUM_BPFFS="$bpffs"
grep -q 'xdp: kept the balancer attached to l0' "$fl_dir/cp.log" || fail_cp "restart did not keep the program"
pinned=$(grep -o '[0-9]* reused from pins' "$fl_dir/cp.log" | tail -1 | cut -d' ' -f1)
[ "${pinned:-0}" -gt 0 ] || fail_cp "restart reused no pinned map"
sleep 0.5
r3=$(round 3)

# kill -9 again, restart with no shared bpffs: adoption from l0's program
cp_kill9
r4=$(round 4)
cp_start
adopted=$(grep -o '[0-9]* adopted' "$fl_dir/cp.log" | tail -1 | cut -d' ' -f1)
[ "${adopted:-0}" -gt 0 ] || fail_cp "second restart adopted no map"
[ "$(grep -c 'xdp: kept the balancer attached to l0' "$fl_dir/cp.log")" -ge 2 ] ||
	fail_cp "second restart did not keep the program"
sleep 0.5
r5=$(round 5)
# and new connections still work after both restarts
for i in $(seq 1 10); do
	out=$(ip netns exec $ns_cli curl -s --max-time 2 "http://$vip/") || fail "request $i after restarts failed"
	[[ $out =~ ^backend\ be[123]$ ]] || fail "request $i after restarts answered '$out'"
done
r6=$(round 6)
wait $client_pid || fail "connection client: $(tail -5 "$fl_dir/client.log")"
client_pid=''

echo "rounds (broken ok moved backends):"
n=0
for r in "$r0" "$r1" "$r2" "$r3" "$r4" "$r5" "$r6"; do
	echo "  round $n: $r"
	n=$((n + 1))
done
total=0
for r in "$r0" "$r1" "$r2" "$r3" "$r4" "$r5" "$r6"; do
	total=$((total + $(broken_of "$r")))
done
[ "$total" = 0 ] || { cat "$fl_dir/client.log"; fail "$total broken connection-rounds"; }
grep -q 'moved 0' <<<"$r6" || fail "a connection changed backend: $r6"

ip netns exec fl$$-be1 "$decap" stats b1 >"$fl_dir/decap.stats" 2>/dev/null || true
echo "ok netns_xdp: fulcrum-cp attached the XDP balancer natively on l0 (an XDP_PASS" \
	"program on its peer for XDP_TX); 20 HTTP requests through the VIP; $N long-lived connections, 0 broken over" \
	"a SIGHUP adding be3 ($seen3/30 new requests went to be3), two kill -9 and restarts" \
	"(pinned maps: $pinned reused; no pins: $adopted adopted), the program kept each time"
