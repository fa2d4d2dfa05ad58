-- highway.lua: a highway MLP in the style of yoonkim/lstm-char-cnn model/HighwayMLP.lua (our own
-- text, small sizes): defaults through `x = x or ...`, layer inputs kept in a table started as
-- {[1] = input}, and ONE nonlinearity instance `f` called in every layer (graphc shares its
-- parameters, if it has any, and sums their gradients). y = t * f(W x) + (1 - t) * x with the
-- transform gate t = sigmoid(W_t x + bias). Input and output: B x size.
--   graphc compile samples/corpus/highway.lua --entry "Highway.mlp(4, 2)" -o highway.py
--   graphc compile samples/corpus/highway.lua --entry "Highway.mlp(4, 3, -1, nn.PReLU())" -o highway_prelu.py
require 'nn'
require 'nngraph'

local Highway = {}

function Highway.mlp(size, num_layers, bias, f)
  local num_layers = num_layers or 1
  local bias = bias or -2
  local f = f or nn.ReLU()
  local input = nn.Identity()()
  local layer_inputs = {[1] = input}
  local out
  for i = 1, num_layers do
    local h = f(nn.Linear(size, size)(layer_inputs[i]))
    local t = nn.Sigmoid()(nn.AddConstant(bias)(nn.Linear(size, size)(layer_inputs[i])))
    local carry = nn.AddConstant(1)(nn.MulConstant(-1)(t))
    out = nn.CAddTable()({
      nn.CMulTable()({t, h}),
      nn.CMulTable()({carry, layer_inputs[i]}),
    })
    table.insert(layer_inputs, out)
  end
  return nn.gModule({input}, {out})
end

return Highway
