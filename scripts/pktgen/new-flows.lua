-- SPDX-License-Identifier: BSD-3-Clause
-- New flows: SYNs to VIP:VPORT on port PORT, each from the next source
-- address and port of the source walk (common.lua), the pool rewritten once
-- sent (REFRESH_MS apart at least). fulcrum-dp records a conntrack entry per
-- new 5-tuple.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local fl = require("common")
fl.main(function()
  local p = fl.param("PORT")
  fl.cli(fl.walk(p, fl.ipv4("VIP"), "syn"))
  fl.run(p, "new-flows", { { port = p, rate = fl.num("RATE") } })
end)
