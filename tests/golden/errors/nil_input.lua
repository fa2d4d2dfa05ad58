require 'nngraph'
local x = nn.Identity()()
local h = nn.Tanh()(hiden)
return nn.gModule({x}, {h})
