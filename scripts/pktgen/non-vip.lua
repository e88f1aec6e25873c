-- SPDX-License-Identifier: BSD-3-Clause
-- Non-VIP traffic: TCP ACKs to NONVIP_DST, an address that is no VIP, from
-- the sources of the source walk (common.lua). fulcrum-dp hands it to the
-- kernel through its TAP port (the exception path), so this measures that
-- path and what it costs the worker; the kernel's answers, if any, come
-- back on the port.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local fl = require("common")
fl.main(function()
  local p = fl.param("PORT")
  fl.cli(fl.walk(p, fl.ipv4("NONVIP_DST"), "ack"))
  fl.run(p, "non-vip")
end)
