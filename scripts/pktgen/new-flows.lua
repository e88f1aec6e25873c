-- SPDX-License-Identifier: BSD-3-Clause
-- New flows: a SYN from a random source address and port every packet, to
-- VIP:VPORT on port PORT. fulcrum-dp inserts a conntrack record per packet.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local fl = require("common")
local p = fl.param("PORT")
fl.cli(fl.syn(p, fl.param("VIP")))
fl.run(p, "new-flows")
fl.finish()
