require 'nngraph'
local x = nn.Identity()()
local h = nn.Linear(3, 4)(x)
local y = nn.Linear(5, 2)(h)
return nn.gModule({x}, {y})
