-- SPDX-License-Identifier: BSD-3-Clause
-- Established flows: ACKs cycling over FLOWS fixed 5-tuples (source
-- addresses SRC_IP.., one source port) to VIP:VPORT on port PORT. After the
-- first FLOWS packets every packet is a conntrack hit.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local fl = require("common")
fl.main(function()
  local p = fl.param("PORT")
  fl.cli(fl.est(p))
  fl.run(p, "established")
end)
