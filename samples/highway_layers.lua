-- highway_layers.lua: a small library of layer builders, loaded with `require` by
-- highway_lm.lua (so the Makefile's dependency tracking has something to track).
local layers = {}

-- One highway layer (Srivastava et al.): y = t * relu(W1 x) + (1 - t) * x, t = sigmoid(W2 x + b)
function layers.highway(x, size, gate_bias)
  local h = nn.ReLU()(nn.Linear(size, size)(x))
  local t = nn.AddConstant(gate_bias or -2)(nn.Linear(size, size)(x))
  t = nn.Sigmoid()(t)
  local carry = nn.AddConstant(1)(nn.MulConstant(-1)(t))
  return nn.CAddTable()({nn.CMulTable()({t, h}), nn.CMulTable()({carry, x})})
end

return layers
