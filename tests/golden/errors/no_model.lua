require 'nngraph'
local M = {}
function M.build(n)
  local x = nn.Identity()()
  return nn.gModule({x}, {nn.Linear(n, n)(x)})
end
return M
