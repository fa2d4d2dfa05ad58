require 'nngraph'
local x = nn.Identity()()
local a = nn.Linear(3, 4)(x)
local b = nn.Linear(3, 5)(x)
return nn.gModule({x}, {nn.CAddTable()({a, b})})
