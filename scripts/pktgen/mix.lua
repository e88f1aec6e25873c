-- SPDX-License-Identifier: BSD-3-Clause
-- A mix of established and new flows (90/10 by default, MIX_SYN_SHARE).
-- Pktgen cannot mix two packet kinds on one port, so this needs two ports
-- (MIX_PORTS = "est,syn"), both cabled to the DUT's port (a switch, or two
-- VFs of one NIC): the first sends established.lua's ACKs, the second
-- new-flows.lua's SYNs.
--
-- The split comes from the burst sizes, 100 - share and share frames:
-- Pktgen 23.06.1 paces every port of a TX lcore by the first port's
-- interval, and shares one next-send time among all TX lcores, so two
-- rates of their own are not kept. Each port is also set to its share of
-- RATE, which gives both the same interval whichever is first. Put both
-- ports on one TX lcore (-m '[rx:tx].[0-1]').
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local fl = require("common")
fl.main(function()
  local est, syn = fl.param("MIX_PORTS"):match("^(%d+),(%d+)$")
  if not est or est == syn then error("MIX_PORTS must be two ports, e.g. 0,1", 0) end
  local rate, share = fl.num("RATE"), fl.num("MIX_SYN_SHARE")
  if share ~= math.floor(share) or share < 1 or share > 99 then
    error("MIX_SYN_SHARE must be a whole percent from 1 to 99", 0)
  end
  fl.cli(fl.est(est, rate * (100 - share) / 100, 100 - share))
  fl.cli(fl.walk(syn, fl.ipv4("VIP"), "syn", rate * share / 100, share))
  fl.run(est .. "," .. syn, "mix", { { port = syn, rate = rate * share / 100 } })
end)
