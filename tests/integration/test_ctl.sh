#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The control socket end to end: a real fulcrum-cp (HTTP checks against
# python http.server on 127.0.0.2/3) driven by fulcrumctl, every operation
# once; then bad input straight on the socket (malformed JSON, unknown op,
# wrong types, an over-long line, a stalled half line, 50 clients at once)
# while a backend goes down, which must still be noticed; then the metrics
# scraped with curl. Every wait is bounded; everything started is killed.
#
# usage: test_ctl.sh [FULCRUM_CP [FULCRUMCTL]]
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CP=${1:-$ROOT/build/cp/fulcrum-cp}
CTL_BIN=${2:-$ROOT/build/cp/fulcrumctl}
PY=/usr/bin/python3

FL_TEST_NAME=ctl
. "$(dirname "$0")/lib.sh"
SOCK=$T/ctl.sock
ctl() { "$CTL_BIN" --socket "$SOCK" "$@"; }
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# expect DESCRIPTION PATTERN COMMAND...: COMMAND exits 0 and prints PATTERN (grep -E)
expect() {
	local what=$1 pat=$2 out rc; shift 2
	out=$("$@" 2>&1); rc=$?
	if [ $rc -eq 0 ] && grep -Eq -- "$pat" <<<"$out"; then ok "$what"
	else fail "$what (exit $rc): $out"; fi
}
# expect_rc DESCRIPTION RC PATTERN COMMAND...
expect_rc() {
	local what=$1 want=$2 pat=$3 out rc; shift 3
	out=$("$@" 2>&1); rc=$?
	if [ $rc -eq "$want" ] && grep -Eq -- "$pat" <<<"$out"; then ok "$what"
	else fail "$what (exit $rc, want $want): $out"; fi
}
# wait_for MS COMMAND...: until COMMAND succeeds
wait_for() {
	local end=$(( $(date +%s%N) / 1000000 + $1 )); shift
	while [ $(( $(date +%s%N) / 1000000 )) -lt $end ]; do "$@" && return 0; sleep 0.1; done
	return 1
}

PORT=$(free_port)
MPORT=$(free_port)
start_server() {
	mkdir -p "$T/www"
	$PY -m http.server -b "$1" -d "$T/www" "$PORT" >/dev/null 2>&1 &
	SRV[$1]=$!
	wait_for 5000 $PY -c "import socket; socket.create_connection(('$1',$PORT),0.2)" 2>/dev/null ||
		{ echo "server $1:$PORT did not start"; exit 1; }
}
stop_server() { kill "${SRV[$1]}"; wait "${SRV[$1]}" 2>/dev/null; unset "SRV[$1]"; }

cat >"$T/cp.conf" <<CONF
global: { shm_name = "$T/shm"; log_level = "info"; control_socket = "$SOCK";
  control_socket_mode = "0660"; metrics_listen = "127.0.0.1:$MPORT"; };
limits: { max_vips = 4; max_backends = 64; ring_entries = 8192; max_workers = 2; };
dataplane: { mode = "dpdk"; dpdk: { ports = ( { device = "net_null0"; queues = 1; } ); workers = [ 1 ]; };
  next_hop: { mac = "02:00:00:00:00:01"; }; tunnel_source_v4 = "10.0.0.2"; };
healthcheck: { type = "http"; interval_ms = 300; timeout_ms = 200; rise = 2; fall = 2;
  port = $PORT; http_path = "/"; expect_status = [ 200 ]; };
vips = ( { name = "web"; address = "10.0.0.100"; port = 80; protocol = "tcp"; method = "ipip";
  table_size = 1021; backends = ( { address = "127.0.0.2"; }, { address = "127.0.0.3"; } ); } );
CONF

start_server 127.0.0.2
start_server 127.0.0.3
"$CP" -c "$T/cp.conf" >"$T/cp.log" 2>&1 &
CP_PID=$!
wait_for 5000 test -S "$SOCK" || { fail "no control socket"; cat "$T/cp.log"; exit 1; }
[ "$(stat -c %a "$SOCK")" = 660 ] && ok "socket mode 0660" || fail "socket mode $(stat -c %a "$SOCK")"
both_up() { [ "$(ctl --json health | grep -o '"health":"up"' | wc -l)" = 2 ]; }
wait_for 5000 both_up && ok "both backends up" || fail "backends not up: $(ctl health)"

# ---- every operation once ----
expect "version" '^fulcrumctl [0-9.]+, fulcrum-cp [0-9.]+ \(pid' ctl version
expect "vip list" '^10\.0\.0\.100:80/tcp +web +ipip +http +2 +2 +0' ctl vip list
expect "vip show" '^127\.0\.0\.3:80 +100 up +up +no' ctl vip show web
expect "health" '127\.0\.0\.2:80 +up +up +http +ok ' ctl health
expect "lookup" '^backend 127\.0\.0\.[23]:80 id [01] epoch 1' ctl lookup 192.0.2.1:1234 10.0.0.100:80 tcp
expect "lookup no-vip" '^no-vip' ctl lookup 192.0.2.1:1234 10.0.0.99:80 tcp
expect "stats" '^rx_packets +0 +0\.0' ctl stats
expect "stats --json" '"counters":\{"rx_packets":0' ctl --json stats
expect "stats --watch 1 (rates from two reads)" 'PER_SECOND' timeout --preserve-status -s INT 2.5 "$CTL_BIN" --socket "$SOCK" stats --watch 1
expect "conntrack" '^capacity per worker: [0-9]+' ctl conntrack
expect "backend add" '^backend 127\.0\.0\.4:80 weight 7 state down' ctl backend add web 127.0.0.4 --weight 7
expect "backend weight" '^backend 127\.0\.0\.4:80 weight 9 ' ctl backend weight 10.0.0.100:80/tcp 127.0.0.4 9
expect "backend remove" '^ok' ctl backend remove web 127.0.0.4:80
expect "backend drain" 'state draining .*drained by the operator' ctl backend drain web 127.0.0.2
drained_out() { ! ctl lookup 192.0.2.1:1 10.0.0.100:80 tcp >/dev/null ||
	for i in $(seq 20); do ctl lookup 192.0.2.$i:$((1000 + i)) 10.0.0.100:80 tcp; done | grep -q 127.0.0.2 && return 1; return 0; }
wait_for 2000 drained_out && ok "drained backend out of the ring" || fail "drained backend still picked"
expect "backend undrain" 'state up ' ctl backend undrain web 127.0.0.2
expect "vip add" '^ok' ctl vip add 10.0.0.200:443 --name tls --table-size 251 --check tcp --check-port "$PORT" --backend 127.0.0.2@5
expect "vip add shown" '^10\.0\.0\.200:443/tcp +tls +ipip +tcp +1 ' ctl vip list
expect "vip remove" '^ok' ctl vip remove tls
# tcp-half-open needs CAP_NET_RAW; without it the add is refused with that reason
if $PY -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)' 2>/dev/null; then
	expect "vip add, tcp-half-open check" '^ok' ctl vip add 10.0.0.201:443 --name half --table-size 251 --check tcp-half-open --check-port "$PORT" --backend 127.0.0.3
	half_up() { ctl health | grep -Eq '^10\.0\.0\.201:443/tcp +127\.0\.0\.3:443 +up +up +tcp-half-open +ok .* SYN-ACK$'; }
	wait_for 5000 half_up && ok "tcp-half-open backend up" || fail "tcp-half-open backend: $(ctl health)"
	expect "vip remove (tcp-half-open)" '^ok' ctl vip remove half
else
	expect_rc "vip add, tcp-half-open check without CAP_NET_RAW" 1 'need CAP_NET_RAW' ctl vip add 10.0.0.201:443 --table-size 251 --check tcp-half-open --backend 127.0.0.3
fi
expect_rc "vip add, unknown check type" 1 'must be none, tcp, tcp-half-open, http or https' ctl vip add 10.0.0.202:80 --check tcp-halfopen
expect_rc "vip add invalid (multicast) is refused" 1 'not a unicast address' ctl vip add 224.0.0.1:80
expect_rc "vip add bad table size" 1 'must be prime' ctl vip add 10.0.0.201:80 --table-size 1000
expect_rc "vip add duplicate" 1 'exists' ctl vip add 10.0.0.100:80
expect_rc "backend add duplicate" 1 'same address and port' ctl backend add web 127.0.0.2
expect_rc "unknown VIP" 1 'no VIP' ctl vip show 10.9.9.9:80
expect_rc "unknown backend" 1 'no backend' ctl backend drain web 127.0.0.9
expect "nothing changed by the bad requests" '^10\.0\.0\.100:80/tcp +web +ipip +http +2 ' ctl vip list
ctl backend weight web 127.0.0.3 0 >/dev/null
expect "reload" '^ok' ctl reload
expect "reload replaced the socket's weight" '^127\.0\.0\.3:80 +100 up' ctl vip show web
expect_rc "usage error: exit 2" 2 'usage' ctl backend weight web
expect_rc "command --help: exit 0" 0 'usage: fulcrumctl .*backend drain VIP ADDR' ctl backend drain --help
expect_rc "unreachable: exit 3" 3 'cannot reach' "$CTL_BIN" --socket "$T/none.sock" version
expect "socket from -c CONFIG" '^fulcrumctl' "$CTL_BIN" -c "$T/cp.conf" version

# ---- bad input, straight on the socket ----
cat >"$T/bad.py" <<'PY'
import json, socket, sys, threading, time
path = sys.argv[1]
fails = []
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(5); s.connect(path); return s
def ask(s, raw):
    if raw: s.sendall(raw)
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(65536)
        if not d: break
        buf += d
    return buf
def check(name, raw, want_ok, want=None, half=False):
    s = conn()
    if half:
        s.sendall(raw); s.shutdown(socket.SHUT_WR); raw = b""
    a = ask(s, raw); s.close()
    try: j = json.loads(a)
    except Exception: fails.append("%s: not JSON: %r" % (name, a[:200])); return
    if j.get("ok") is not want_ok or (want and want not in j.get("error", "")):
        fails.append("%s: %r" % (name, j))
    else: print("ok: %s -> %s" % (name, j.get("error", "ok")))
check("malformed JSON", b'{"op": "version"\n', False, "malformed")
check("not an object", b'[1,2]\n', False, "object")
check("binary", b'\x00\xff\xfe{\n', False, "malformed")
check("unknown op", b'{"op":"frobnicate"}\n', False, "unknown op")
check("op of the wrong type", b'{"op":7}\n', False, "must be a string")
check("weight of the wrong type", b'{"op":"backend.weight","vip":"web","address":"127.0.0.2","weight":"5"}\n', False, "integer")
check("unknown member", b'{"op":"vip.list","bogus":1}\n', False, "takes no")
check("deep nesting", b'[' * 10000 + b'\n', False, "malformed")
check("half-closed client gets its answer", b'{"op":"version"}', True, half=True)
# pipelined requests on one connection: one answer each, in order
s = conn(); s.sendall(b'{"op":"version"}\n\n{"op":"nope"}\n{"op":"vip.list"}\n')
lines = []; buf = b""
while buf.count(b"\n") < 3:
    d = s.recv(65536)
    if not d: break
    buf += d
s.close()
got = [json.loads(l)["ok"] for l in buf.split(b"\n") if l]
(print("ok: pipelined answers in order") if got == [True, False, True] else fails.append("pipelined: %r" % buf[:300]))
# an over-long line: an error answer, then the connection closes
s = conn()
try:
    s.sendall(b'{"op":"version","x":"' + b"a" * 70000)
except OSError: pass
buf = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        buf += d
except OSError: pass
s.close()
(print("ok: over-long line -> %s" % buf.strip().decode()) if b"longer than" in buf else fails.append("long line: %r" % buf[:200]))
# a stalled half line, held open while 50 clients are served at once
stall = conn(); stall.sendall(b'{"op":"vers')
res = [None] * 50
def one(i):
    try:
        s = conn(); a = ask(s, b'{"op":"health"}\n'); s.close(); res[i] = json.loads(a)["ok"]
    except Exception as e: res[i] = repr(e)
th = [threading.Thread(target=one, args=(i,)) for i in range(50)]
t0 = time.time(); [t.start() for t in th]; [t.join() for t in th]
(print("ok: 50 clients at once answered in %.2f s beside a stalled one" % (time.time() - t0))
 if res == [True] * 50 else fails.append("50 clients: %r" % res))
# the stalled client still finishes its line and gets its answer
stall.sendall(b'ion"}\n'); a = stall.recv(65536); stall.close()
(print("ok: stalled client answered when it finished") if json.loads(a)["ok"] else fails.append("stalled: %r" % a))
# hold a stalled half line for the caller's health check
stall = conn(); stall.sendall(b'{"op":')
print("ready", flush=True)
sys.stdin.read()
stall.close()
for f in fails: print("FAIL: " + f)
sys.exit(1 if fails else 0)
PY
coproc BAD { $PY "$T/bad.py" "$SOCK" 2>&1; }
bad_pid=$!
while IFS= read -r -t 30 line <&"${BAD[0]}"; do
	[ "$line" = ready ] && break
	echo "$line"
	[[ "$line" == FAIL:* ]] && failures=$((failures + 1))
done
# health checking goes on while a client stalls mid-line
stop_server 127.0.0.3
is_down() { ctl health | grep -Eq '127\.0\.0\.3:80 +down +down'; }
wait_for 4000 is_down && ok "127.0.0.3 went down while a client stalled" || fail "no down: $(ctl health)"
grep -q "backend 127.0.0.3:80 of 10.0.0.100:80/tcp down" "$T/cp.log" && ok "down logged" || fail "down not logged"
if [ -n "${BAD[1]:-}" ]; then
	badin=${BAD[1]}
	exec {badin}>&-	# EOF on its stdin: it drops the stalled client and reports
	while IFS= read -r -t 10 line <&"${BAD[0]}"; do
		echo "$line"
		[[ "$line" == FAIL:* ]] && failures=$((failures + 1))
	done
fi
wait "$bad_pid"; rc=$?
[ $rc -eq 0 ] && ok "bad-input client done" || fail "bad-input client exit $rc"
kill -0 "$CP_PID" 2>/dev/null && ok "fulcrum-cp still running" || fail "fulcrum-cp died"

# ---- metrics ----
M=$(curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics")
for series in fulcrum_table_generation fulcrum_dp_rx_packets_total 'fulcrum_drops_total\{reason="no_backend"\}' \
	'fulcrum_drops_total\{reason="tx_full"\}' 'fulcrum_conntrack_occupancy\{worker="0"\}' \
	'fulcrum_conntrack_evictions_total\{worker="1"\}' 'fulcrum_vip_packets_total\{vip="10.0.0.100:80/tcp",name="web"\}' \
	fulcrum_vip_bytes_total fulcrum_vip_new_flows_total \
	'fulcrum_backend_packets_total\{vip="10.0.0.100:80/tcp",name="web",backend="127.0.0.2:80"\}' \
	fulcrum_backend_bytes_total 'fulcrum_backend_health_up\{.*backend="127.0.0.3:80"\} 0' \
	'fulcrum_backend_state\{.*backend="127.0.0.3:80",state="down"\} 1'; do
	grep -Eq "^$series" <<<"$M" && ok "metric $series" || fail "metric $series missing"
done
grep -q "^# TYPE fulcrum_drops_total counter" <<<"$M" && ok "metric types" || fail "no TYPE lines"
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$MPORT/")" = 404 ] &&
	ok "metrics: other paths 404" || fail "metrics: / not 404"

kill -TERM "$CP_PID"; wait "$CP_PID"; rc=$?; CP_PID=
[ $rc -eq 0 ] && ok "clean exit" || fail "exit $rc"
[ ! -e "$SOCK" ] && ok "socket removed at exit" || fail "socket left behind"
if [ $failures -ne 0 ]; then
	echo "$failures failures; fulcrum-cp log:"; tail -30 "$T/cp.log"; exit 1
fi
echo "all passed"
