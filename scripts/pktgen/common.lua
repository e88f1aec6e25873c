-- SPDX-License-Identifier: BSD-3-Clause
-- Shared part of the fulcrum Pktgen-DPDK profiles (Pktgen-DPDK 23.06.1).
--
-- Parameters come from the environment (FL_PG_<NAME>), else from the file
-- named by FL_PG_PARAMS (shell-style NAME=value lines, see params.example),
-- else from the defaults below. The traffic itself is set up with Pktgen
-- CLI commands written to a temporary command file and loaded with
-- pktgen.load(): Pktgen 23.06's Lua API cannot set TCP flags.
--
-- Every profile sends in range mode: Pktgen writes each frame of a port's
-- range pool (24,576 mbufs per TX queue) once, stepping the fields by
-- their increments from frame to frame, checksums included, and then sends
-- that pool round and round. Random mode (`set N rnd`) is no use here: in
-- 23.06.1 the call that applies the random bits to each burst is missing
-- (Pktgen-DPDK issue #281), every frame leaves with the same 5-tuple.
local M = {}

local defaults = {
  PORT = "0",                    -- Pktgen port of the single-port profiles
  MIX_PORTS = "0,1",             -- est port, syn port (mix needs two)
  DUT_MAC = "02:00:00:00:00:01", -- fulcrum-dp's port (or the router before it)
  VIP = "10.0.0.100",
  VPORT = "80",
  SRC_IP = "172.16.0.1",         -- first client address
  SPORT = "40000",               -- source port of the established flows
  FLOWS = "4096",                -- established flows (distinct source addresses)
  NONVIP_DST = "198.51.100.1",   -- destination of the non-VIP profile
  SIZE = "64",                   -- frame size with FCS
  RATE = "100",                  -- percent of line rate (fractions allowed)
  DURATION = "10",               -- seconds of traffic
  MIX_SYN_SHARE = "10",          -- percent of the mix that is new flows
  REFRESH_MS = "1000",           -- new flows: least time between pool rewrites
  STAY = "0",                    -- 1: keep the Pktgen prompt after the run
}

-- The source walk of new flows: 2^20 - 1 source addresses from SRC_IP and
-- source ports 1024-65535, both stepping by one per frame. The two periods
-- share only the factor 3, so a 5-tuple comes back after about 2.2e10
-- frames.
local WALK_SOURCES = 1048575
local WALK_SPORT_MIN, WALK_SPORT_MAX = 1024, 65535

local function read_params_file(path)
  local t = {}
  if not path then return t end
  local f = io.open(path, "r")
  if not f then error("FL_PG_PARAMS names " .. path .. ", which cannot be read", 0) end
  for line in f:lines() do
    local k, v = line:gsub("%s#.*$", ""):match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
    if k then t[(k:gsub("^FL_PG_", ""))] = v:gsub("^[\"'](.*)[\"']$", "%1") end
  end
  f:close()
  return t
end

local file -- read at the first M.param(), inside M.main's error handling

function M.param(name)
  file = file or read_params_file(os.getenv("FL_PG_PARAMS"))
  return os.getenv("FL_PG_" .. name) or file[name] or defaults[name]
end

-- A numeric parameter, or an error that names it.
function M.num(name)
  local v = tonumber(M.param(name))
  if not v then error(string.format("%s must be a number, not '%s'", name, M.param(name)), 0) end
  return v
end

local function check(name, pattern, what)
  local v = M.param(name)
  if not v:match(pattern) then error(string.format("%s must be %s, not '%s'", name, what, v), 0) end
  return v
end

function M.ipv4(name) return check(name, "^%d+%.%d+%.%d+%.%d+$", "an IPv4 address") end
local ipv4 = M.ipv4
local function mac(name)
  return check(name, "^%x%x:%x%x:%x%x:%x%x:%x%x:%x%x$", "a MAC address (aa:bb:cc:dd:ee:ff)")
end

-- "a.b.c.d" + n, for the end of a source-address range.
function M.ip_add(ip, n)
  local a, b, c, d = ip:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  local v = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d) + n
  return string.format("%d.%d.%d.%d", v // 16777216 % 256, v // 65536 % 256,
                       v // 256 % 256, v % 256)
end

-- Runs Pktgen CLI lines (a list of strings) as one command file. The file's
-- name must not end in .lua, or Pktgen would run it as Lua.
function M.cli(lines)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  pktgen.load(path)
  os.remove(path)
end

-- Port p sends IPv4 TCP frames of SIZE bytes to DUT_MAC at rate percent
-- of line rate (RATE by default) in range mode, burst frames at a time
-- (Pktgen's default 64 when nil). o: dst (address), src_first and src_last
-- (source addresses, one step per frame), sport_first and sport_last
-- (likewise), flag (the one TCP flag set).
function M.range(p, rate, burst, o)
  local dmac, size, vport = mac("DUT_MAC"), M.num("SIZE"), M.num("VPORT")
  local sport_inc = o.sport_first == o.sport_last and 0 or 1
  return {
    "stop " .. p,
    "disable " .. p .. " random",
    "set " .. p .. " type ipv4",
    "set " .. p .. " proto tcp",
    "set " .. p .. " size " .. size,   -- Pktgen paces by the single-mode size
    string.format("set %s rate %g", p, rate or M.num("RATE")),
    string.format("set %s burst %d", p, burst or 64),
    "range " .. p .. " type ipv4",
    "range " .. p .. " proto tcp",
    string.format("range %s dst mac %s %s %s 00:00:00:00:00:00", p, dmac, dmac, dmac),
    string.format("range %s dst ip %s %s %s 0.0.0.0", p, o.dst, o.dst, o.dst),
    string.format("range %s src ip %s %s %s 0.0.0.1", p, o.src_first, o.src_first, o.src_last),
    string.format("range %s dst port %d %d %d 0", p, vport, vport, vport),
    string.format("range %s src port %d %d %d %d", p, o.sport_first, o.sport_first,
                  o.sport_last, sport_inc),
    string.format("range %s size %d %d %d 0", p, size, size, size),
    "range " .. p .. " tcp flag clr all",
    "range " .. p .. " tcp flag set " .. o.flag,
    "enable " .. p .. " range",
  }
end

-- Frames with TCP flag flag to dst, each the next step of the source walk.
function M.walk(p, dst, flag, rate, burst)
  local src = ipv4("SRC_IP")
  return M.range(p, rate, burst, {
    dst = dst, src_first = src, src_last = M.ip_add(src, WALK_SOURCES - 1),
    sport_first = WALK_SPORT_MIN, sport_last = WALK_SPORT_MAX, flag = flag,
  })
end

-- A fixed set of FLOWS flows: ACKs from FLOWS source addresses and one
-- source port to VIP:VPORT; the set repeats every FLOWS frames. A pool
-- holds 24,576 frames per TX queue, so up to that many flows per TX queue
-- are sent, each equally often when FLOWS divides 24,576.
function M.est(p, rate, burst)
  local src, flows, sport = ipv4("SRC_IP"), M.num("FLOWS"), M.num("SPORT")
  if flows < 1 or flows ~= math.floor(flows) then error("FLOWS must be a whole number >= 1", 0) end
  return M.range(p, rate, burst, {
    dst = ipv4("VIP"), src_first = src, src_last = M.ip_add(src, flows - 1),
    sport_first = sport, sport_last = sport, flag = "ack",
  })
end

-- Seconds since boot, to 10 ms: pktgen.delay() sleeps in 10 ms steps and
-- runs Pktgen's timers between them, so it overruns on a busy machine.
local function now()
  local f = assert(io.open("/proc/uptime", "r"))
  local t = f:read("n")
  f:close()
  return t
end

-- Seconds port p takes to send its range pool once at rate percent of its
-- link speed ("<UP-10000-FD>": Mbit/s), with 20 bytes of preamble and gap
-- per frame; nil when the link is down.
local function pool_seconds(p, rate)
  local mbps = tonumber(pktgen.linkState(p)[tonumber(p)]:match("^<UP%-(%d+)%-"))
  if not mbps or mbps == 0 or rate <= 0 then return nil end
  local pps = mbps * 1e6 / ((M.num("SIZE") + 20) * 8) * rate / 100
  return pktgen.info.maxMbufsPerPort / pps
end

-- Sends on ports (a Pktgen portlist string) for DURATION seconds and
-- prints what each port sent and received. refresh lists the ports of the
-- source walk ({ port, rate }): Pktgen sends a port's range pool round and
-- round, so once a pool has been sent it is rewritten, the walk going on
-- from where it was, and the port keeps sending 5-tuples not seen before.
-- A rewrite fills the whole pool on the TX lcore, which sends nothing
-- meanwhile (0.5-1 s for 24,576 frames on the 2-vCPU test VM), so rewrites
-- are at least REFRESH_MS apart: above 24,576 frames per TX queue per
-- REFRESH_MS, the pool's frames come round again and are no new flows.
--
-- The rewrite is triggered by setting the single-mode source port, unused
-- in range mode: any single-mode setting marks the pools for rewriting,
-- but the size setter also recomputes the port's send interval.
function M.run(ports, label, refresh)
  local secs, min_gap = M.num("DURATION"), M.num("REFRESH_MS") / 1000
  local due = {}
  pktgen.clr()
  local t0 = now()
  for _, r in ipairs(refresh or {}) do
    local pool = pool_seconds(r.port, r.rate)
    if pool then due[r.port] = { gap = math.max(pool, min_gap), at = t0 + math.max(pool, min_gap) } end
  end
  pktgen.start(ports)
  while now() - t0 < secs do
    for p, d in pairs(due) do
      if now() >= d.at then
        pktgen.set(p, "sport", WALK_SPORT_MIN)
        d.at = now() + d.gap
      end
    end
    pktgen.delay(20)
  end
  pktgen.stop(ports)
  local elapsed = now() - t0
  -- Pktgen's port counters are a snapshot its 1 s timer takes; the DUT's
  -- last packets come back meanwhile.
  pktgen.delay(1500)
  local s = pktgen.portStats(ports, "port")
  for p in tostring(ports):gmatch("%d+") do
    local i = tonumber(p)
    print(string.format("fulcrum-pktgen: %s port %d: %.1f s, tx %d packets (%.3f Mpps), "
                        .. "rx %d packets (%.3f Mpps), rx missed %d, rx errors %d",
                        label, i, elapsed, s[i].opackets, s[i].opackets / elapsed / 1e6,
                        s[i].ipackets, s[i].ipackets / elapsed / 1e6, s[i].imissed,
                        s[i].ierrors))
  end
end

-- Runs a profile's body; on an error prints it. Then quits Pktgen unless
-- STAY=1, so a script run without a terminal to type `quit` into ends.
function M.main(body)
  local ok, err = pcall(body)
  if not ok then print("fulcrum-pktgen: error: " .. tostring(err)) end
  if M.param("STAY") ~= "1" then pktgen.quit() end
end

return M
