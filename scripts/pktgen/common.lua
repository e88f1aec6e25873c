-- SPDX-License-Identifier: BSD-3-Clause
-- Shared part of the fulcrum Pktgen-DPDK profiles (Pktgen-DPDK 23.06.1).
--
-- Parameters come from the environment (FL_PG_<NAME>), else from the file
-- named by FL_PG_PARAMS (shell-style NAME=value lines, see params.example),
-- else from the defaults below. The traffic itself is set up with Pktgen
-- CLI commands written to a temporary command file and loaded with
-- pktgen.load(): Pktgen 23.06's Lua API cannot set TCP flags.
local M = {}

local defaults = {
  PORT = "0",                    -- Pktgen port of the single-port profiles
  MIX_PORTS = "0,1",             -- est port, syn port (mix needs two)
  DUT_MAC = "02:00:00:00:00:01", -- fulcrum-dp's port (or the router before it)
  VIP = "10.0.0.100",
  VPORT = "80",
  SRC_IP = "172.16.0.1",         -- clients: a /12 from here
  SPORT = "40000",               -- source port of the established flows
  FLOWS = "4096",                -- established flows (distinct source addresses)
  NONVIP_DST = "198.51.100.1",   -- destination of the non-VIP profile
  SIZE = "64",                   -- frame size with FCS
  RATE = "100",                  -- percent of line rate
  DURATION = "10",               -- seconds of traffic
  MIX_SYN_SHARE = "10",          -- percent of the mix that is new flows
}

local function read_params_file(path)
  local t = {}
  local f = path and io.open(path, "r")
  if not f then return t end
  for line in f:lines() do
    local k, v = line:gsub("%s#.*$", ""):match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
    if k then t[(k:gsub("^FL_PG_", ""))] = v:gsub("^[\"'](.*)[\"']$", "%1") end
  end
  f:close()
  return t
end

local file = read_params_file(os.getenv("FL_PG_PARAMS"))

function M.param(name)
  return os.getenv("FL_PG_" .. name) or file[name] or defaults[name]
end

-- "a.b.c.d" + n, for the end of the established-flow range.
function M.ip_add(ip, n)
  local a, b, c, d = ip:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  local v = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d) + n
  return string.format("%d.%d.%d.%d", v // 16777216 % 256, v // 65536 % 256,
                       v // 256 % 256, v % 256)
end

-- Runs Pktgen CLI lines (a list of strings) as one command file.
function M.cli(lines)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  pktgen.load(path)
  os.remove(path)
end

-- The lines every profile shares: IPv4 TCP of SIZE bytes to DUT_MAC.
function M.base(p, rate)
  return {
    "stop " .. p,
    "disable " .. p .. " range",
    "disable " .. p .. " random",
    "set " .. p .. " type ipv4",
    "set " .. p .. " proto tcp",
    "set " .. p .. " size " .. M.param("SIZE"),
    "set " .. p .. " rate " .. (rate or M.param("RATE")),
    "set " .. p .. " dst mac " .. M.param("DUT_MAC"),
    "set " .. p .. " src ip " .. M.param("SRC_IP") .. "/12",
    "set " .. p .. " dport " .. M.param("VPORT"),
    "set " .. p .. " sport " .. M.param("SPORT"),
  }
end

-- SYNs from random sources: the low 20 bits of the source address (offset
-- 26 of the frame) and the source port (offset 34) random per packet.
-- Pktgen does not recompute the IPv4 checksum for random bits unless the
-- NIC offloads it; fulcrum-dp does not check it.
function M.syn(p, dst, rate)
  local l = M.base(p, rate)
  table.insert(l, "set " .. p .. " dst ip " .. dst)
  table.insert(l, "set " .. p .. " tcp flag clr all")
  table.insert(l, "set " .. p .. " tcp flag set syn")
  table.insert(l, "set " .. p .. " rnd 0 26 ............XXXXXXXXXXXXXXXXXXXX")
  table.insert(l, "set " .. p .. " rnd 1 34 XXXXXXXXXXXXXXXX................")
  table.insert(l, "enable " .. p .. " random")
  return l
end

-- A fixed set of FLOWS flows: range mode over FLOWS source addresses, one
-- source port, ACK set; the set repeats every FLOWS packets.
function M.est(p, rate)
  local src, vip, vport, sport = M.param("SRC_IP"), M.param("VIP"), M.param("VPORT"), M.param("SPORT")
  local last = M.ip_add(src, tonumber(M.param("FLOWS")) - 1)
  local l = M.base(p, rate)
  for _, c in ipairs({
    "range " .. p .. " proto tcp",
    "range " .. p .. " type ipv4",
    "range " .. p .. " dst mac " .. M.param("DUT_MAC") .. " " .. M.param("DUT_MAC") .. " "
      .. M.param("DUT_MAC") .. " 00:00:00:00:00:00",
    "range " .. p .. " dst ip " .. vip .. " " .. vip .. " " .. vip .. " 0.0.0.0",
    "range " .. p .. " src ip " .. src .. " " .. src .. " " .. last .. " 0.0.0.1",
    "range " .. p .. " dst port " .. vport .. " " .. vport .. " " .. vport .. " 0",
    "range " .. p .. " src port " .. sport .. " " .. sport .. " " .. sport .. " 0",
    "range " .. p .. " size " .. M.param("SIZE") .. " " .. M.param("SIZE") .. " "
      .. M.param("SIZE") .. " 0",
    "range " .. p .. " tcp flag clr all",
    "range " .. p .. " tcp flag set ack",
    "enable " .. p .. " range",
  }) do table.insert(l, c) end
  return l
end

-- Sends on ports (a Pktgen portlist string) for DURATION seconds and
-- prints what each port sent and received, in Mpps.
function M.run(ports, label)
  local secs = tonumber(M.param("DURATION"))
  pktgen.clr()
  local a = pktgen.portStats(ports, "port")
  pktgen.start(ports)
  pktgen.delay(secs * 1000)
  pktgen.stop(ports)
  pktgen.delay(500)           -- the DUT's last packets come back
  local b = pktgen.portStats(ports, "port")
  for p in tostring(ports):gmatch("%d+") do
    local i = tonumber(p)
    local tx = (b[i].opackets - a[i].opackets) / secs / 1e6
    local rx = (b[i].ipackets - a[i].ipackets) / secs / 1e6
    print(string.format("fulcrum-pktgen: %s port %d: tx %.2f Mpps, rx %.2f Mpps, "
                        .. "rx missed %d, rx errors %d", label, i, tx, rx,
                        b[i].imissed - a[i].imissed, b[i].ierrors - a[i].ierrors))
  end
end

-- Exit after the run unless FL_PG_STAY=1 (then the Pktgen prompt stays).
function M.finish()
  if M.param("STAY") ~= "1" then pktgen.quit() end
end

return M
