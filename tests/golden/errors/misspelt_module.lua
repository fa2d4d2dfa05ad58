require 'nngraph'
local x = nn.Identity()()
local h = nn.Lienar(3, 4)(x)
return nn.gModule({x}, {h})
