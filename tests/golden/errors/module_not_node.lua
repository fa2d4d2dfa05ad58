require 'nngraph'
local x = nn.Identity()()
local y = nn.Tanh()
return nn.gModule({x}, {y})
