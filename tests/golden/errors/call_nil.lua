require 'nngraph'
local function cell(x)
  return nn.Tanh()(x)
end
local x = nn.Identity()()
return nn.gModule({x}, {celll(x)})
