require 'nngraph'
local x = nn.Identity()()
local y = nn.Tanh()(x
return nn.gModule({x}, {y})
