-- SPDX-License-Identifier: BSD-3-Clause
-- A mix of established and new flows (90/10 by default, MIX_SYN_SHARE).
-- Pktgen cannot mix two packet kinds on one port, so this needs two ports
-- (MIX_PORTS = "est,syn"), both cabled to the DUT's port (a switch, or two
-- VFs of one NIC): the first sends est at (100 - share)% of RATE, the
-- second SYNs at share%.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local fl = require("common")
local est, syn = fl.param("MIX_PORTS"):match("^(%d+),(%d+)$")
assert(est and syn, "MIX_PORTS must be two ports, e.g. 0,1")
local rate, share = tonumber(fl.param("RATE")), tonumber(fl.param("MIX_SYN_SHARE"))
fl.cli(fl.est(est, math.floor(rate * (100 - share) / 100)))
fl.cli(fl.syn(syn, fl.param("VIP"), math.max(1, math.floor(rate * share / 100))))
fl.run(est .. "," .. syn, "mix")
fl.finish()
