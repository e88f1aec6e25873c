-- SPDX-License-Identifier: BSD-3-Clause
-- Non-VIP traffic: TCP from random sources to NONVIP_DST, an address that
-- is no VIP. fulcrum-dp hands it to the kernel through its TAP port (the
-- exception path), so this measures that path and what it costs the
-- worker; the kernel's answers, if any, come back on the port.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local fl = require("common")
local p = fl.param("PORT")
local l = fl.syn(p, fl.param("NONVIP_DST"))
table.insert(l, "set " .. p .. " tcp flag clr all")
table.insert(l, "set " .. p .. " tcp flag set ack")
fl.cli(l)
fl.run(p, "non-vip")
fl.finish()
