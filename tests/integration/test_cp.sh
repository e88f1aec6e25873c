#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# fulcrum-cp end to end: the real daemon, HTTP backends (python http.server on
# 127.0.0.2..5), the published tables read back with fulcrum-tables --lookup.
# Health down and up, reload by difference, a broken reload, and a kill -9
# restart that must move no flow. Every wait is bounded.
#
# usage: test_cp.sh [FULCRUM_CP [FULCRUM_TABLES]]
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CP=${1:-$ROOT/build/cp/fulcrum-cp}
TABLES=${2:-$ROOT/build/cp/fulcrum-tables}
PY=/usr/bin/python3
INTERVAL_MS=500
RISE=2
FALL=3
FLOWS=48

FL_TEST_NAME=cp
. "$(dirname "$0")/lib.sh"
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

start_server() {	# ADDR
	mkdir -p "$T/www"
	$PY -m http.server -b "$1" -d "$T/www" "$PORT" >/dev/null 2>&1 &
	SRV[$1]=$!
	for _ in $(seq 50); do
		$PY -c "import socket,sys; socket.create_connection(('$1',$PORT),0.2)" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "server $1:$PORT did not start"; exit 1
}
stop_server() { kill "${SRV[$1]}"; wait "${SRV[$1]}" 2>/dev/null; unset "SRV[$1]"; }

write_config() {	# FILE BACKEND...
	local f=$1; shift
	{
		echo "global: { shm_name = \"$T/shm\"; control_socket = \"$T/ctl.sock\"; log_level = \"info\"; };"
		echo "limits: { max_vips = 4; max_backends = 64; ring_entries = 8192; max_workers = 2; };"
		# dpdk mode: fulcrum-cp only publishes (xdp mode would load and attach the program)
		echo "dataplane: { mode = \"dpdk\"; dpdk: { eal_args = [ \"--no-huge\" ]; ports = ( { name = \"p0\"; device = \"net_null0\"; } ); workers = [ 1 ]; };"
		echo "  next_hop: { mac = \"02:00:00:00:00:01\"; }; tunnel_source_v4 = \"10.0.0.2\"; };"
		echo "healthcheck: { type = \"http\"; interval_ms = $INTERVAL_MS; timeout_ms = 300;"
		echo "  rise = $RISE; fall = $FALL; port = $PORT; http_path = \"/\"; expect_status = [ 200 ]; };"
		echo "vips = ( { address = \"10.0.0.100\"; port = 80; protocol = \"tcp\"; method = \"ipip\";"
		echo "  table_size = 1021; backends = ("
		local sep=
		for b in "$@"; do echo "    $sep{ address = \"$b\"; }"; sep=,; done
		echo "  ); } );"
	} > "$f"
}

# One line per flow: "backend ADDR id N epoch E" (or no-backend).
lookups() {
	for i in $(seq $FLOWS); do
		"$TABLES" "$T/cp.conf" --lookup "192.0.2.$((i % 7 + 1)):$((10000 + i))" 10.0.0.100:80 tcp 2>&1
	done
}
named() { lookups | awk '$1 == "backend" { print $2 }' | sort -u | tr '\n' ' '; }

# wait_for DEADLINE_MS COMMAND...: runs COMMAND until it succeeds; the time taken in $took
wait_for() {
	local deadline=$(( $(now_ms) + $1 )) start; start=$(now_ms); shift
	while [ "$(now_ms)" -lt "$deadline" ]; do
		if "$@"; then took=$(( $(now_ms) - start )); return 0; fi
		sleep 0.1
	done
	took=$(( $(now_ms) - start )); return 1
}
has() { [[ " $(named) " == *" $1 "* ]]; }
lacks() { ! has "$1"; }
all_up() { for b in "$@"; do has "$b" || return 1; done; }

start_cp() {
	"$CP" -c "$T/cp.conf" >>"$T/cp.log" 2>&1 &
	CP_PID=$!
}

for b in 127.0.0.2 127.0.0.3 127.0.0.4; do start_server $b; done
write_config "$T/cp.conf" 127.0.0.2 127.0.0.3 127.0.0.4

"$CP" --check-config "$T/cp.conf" >/dev/null && ok "--check-config valid" || fail "--check-config rejects a valid file"
echo 'vips = ( { address = "bad"; } );' > "$T/broken.conf"
"$CP" --check-config "$T/broken.conf" >/dev/null 2>"$T/check.err"; rc=$?
[ $rc -eq 2 ] && ok "--check-config broken: exit 2 ($(head -1 "$T/check.err"))" || fail "--check-config broken: exit $rc"
# a tcp-half-open check is valid config, but only runs with CAP_NET_RAW:
# a check by a process without it says so, and still exits 0
sed 's/type = "http"/type = "tcp-half-open"/' "$T/cp.conf" > "$T/half.conf"
"$CP" --check-config "$T/half.conf" >/dev/null 2>"$T/check.err"; rc=$?
[ $rc -eq 0 ] && [ ! -s "$T/check.err" ] && ok "--check-config tcp-half-open with CAP_NET_RAW: valid, no warning" ||
	fail "--check-config tcp-half-open: exit $rc, $(cat "$T/check.err")"
setpriv --bounding-set -net_raw "$CP" --check-config "$T/half.conf" >/dev/null 2>"$T/check.err"; rc=$?
[ $rc -eq 0 ] && grep -q "need CAP_NET_RAW" "$T/check.err" &&
	ok "--check-config tcp-half-open without CAP_NET_RAW: valid, warns ($(head -1 "$T/check.err"))" ||
	fail "--check-config tcp-half-open without CAP_NET_RAW: exit $rc, '$(cat "$T/check.err")'"

# 1. starts and publishes; the backends come up after rise
start_cp
if wait_for 5000 all_up 127.0.0.2 127.0.0.3 127.0.0.4; then
	ok "published, all three up after ${took} ms"
else
	fail "not all up: $(named)"; cat "$T/cp.log"; exit 1
fi

# 2. a backend dies: gone from the tables within fall * interval + 1 s
stop_server 127.0.0.3
limit=$(( FALL * INTERVAL_MS + 1000 ))
if wait_for $limit lacks 127.0.0.3; then ok "127.0.0.3 down after ${took} ms (limit $limit)"
else fail "127.0.0.3 still in the tables after $limit ms: $(named)"; fi
grep -q "backend 127.0.0.3:80 of 10.0.0.100:80/tcp down: connect refused (3 of fall 3)" "$T/cp.log" &&
	ok "down logged with its reason" || fail "no down line in the log"

# 3. it comes back: up after rise
start_server 127.0.0.3
limit=$(( (RISE + 1) * INTERVAL_MS + 1000 ))
if wait_for $limit has 127.0.0.3; then ok "127.0.0.3 back after ${took} ms (limit $limit)"
else fail "127.0.0.3 not back after $limit ms"; fi

# 4. reload with a backend added
start_server 127.0.0.5
write_config "$T/cp.conf" 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5
kill -HUP "$CP_PID"
if wait_for $(( (RISE + 1) * INTERVAL_MS + 2000 )) has 127.0.0.5; then
	ok "reload: 127.0.0.5 added after ${took} ms"
else fail "reload: 127.0.0.5 not in the tables: $(named)"; fi
grep -q "applied: 1 VIPs, 4 backends (3 kept" "$T/cp.log" && ok "reload kept the 3 unchanged checks" ||
	fail "reload did not keep the unchanged checks: $(grep applied "$T/cp.log" | tail -1)"

# 5. a broken reload: logged, old config kept, still alive
before=$(lookups)
cp "$T/cp.conf" "$T/good.conf"
echo "this is not libconfig" >> "$T/cp.conf"
kill -HUP "$CP_PID"
wait_for 3000 grep -q "reload failed, keeping the running config" "$T/cp.log" &&
	ok "broken reload logged: $(grep 'reload failed' "$T/cp.log" | tail -1 | cut -c1-140)" ||
	fail "broken reload not logged"
sleep 1
kill -0 "$CP_PID" 2>/dev/null && ok "still running" || fail "fulcrum-cp died on a broken reload"
cp "$T/good.conf" "$T/cp.conf"
[ "$(lookups)" == "$before" ] && ok "tables unchanged by the broken reload" || fail "tables changed"

# 6. kill -9 and restart: every flow keeps its backend id and epoch
before=$(lookups)
kill -9 "$CP_PID"; wait "$CP_PID" 2>/dev/null; CP_PID=
[ "$(lookups)" == "$before" ] && ok "tables stay while fulcrum-cp is away (fail static)" || fail "tables changed at kill"
gens=$(grep -c "published generation" "$T/cp.log")
start_cp
published_more() { [ "$(grep -c 'published generation' "$T/cp.log")" -gt "$gens" ]; }
wait_for 3000 published_more || fail "restarted fulcrum-cp did not publish"
after=$(lookups)
if [ "$after" == "$before" ]; then ok "restart moved no flow ($FLOWS flows, same id and epoch)"
else fail "restart moved flows:"; diff <(echo "$before") <(echo "$after") | head; fi
sleep 2	# a few check rounds: still the same
[ "$(lookups)" == "$before" ] && ok "still the same after the first checks" || fail "flows moved after restart checks"

# 7. SIGTERM: a clean exit, the tables stay
kill -TERM "$CP_PID"
if wait_for 3000 bash -c "! kill -0 $CP_PID 2>/dev/null"; then
	wait "$CP_PID"; rc=$?; CP_PID=
	[ $rc -eq 0 ] && ok "SIGTERM: exit 0" || fail "SIGTERM: exit $rc"
else fail "no exit on SIGTERM"; fi
[ "$(lookups)" == "$before" ] && ok "tables stay after exit" || fail "tables changed after exit"

if [ $failures -ne 0 ]; then
	echo "--- fulcrum-cp log"; cat "$T/cp.log"
	echo "$failures failure(s)"; exit 1
fi
echo "all ok"
