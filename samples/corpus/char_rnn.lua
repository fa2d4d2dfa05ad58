-- char_rnn.lua: one time step of a stacked vanilla RNN, in the style of karpathy/char-rnn
-- model/RNN.lua (our own text, small sizes): n+1 inputs made in a loop, the `f{...}` call sugar
-- nn.CAddTable(){a, b}, each layer feeding the next. Inputs: x (B x input_size), prev_h[L];
-- outputs: next_h[L].
--   graphc compile samples/corpus/char_rnn.lua --entry "CharRNN.step(3, 4, 2)" -o char_rnn.py
require 'nn'
require 'nngraph'

local CharRNN = {}

function CharRNN.step(input_size, rnn_size, n)
  local inputs = {}
  table.insert(inputs, nn.Identity()())     -- x
  for L = 1, n do
    table.insert(inputs, nn.Identity()())   -- prev_h[L]
  end

  local x, layer_in
  local outputs = {}
  for L = 1, n do
    local prev_h = inputs[L + 1]
    if L == 1 then x = inputs[1] else x = outputs[L - 1] end
    if L == 1 then layer_in = input_size else layer_in = rnn_size end
    local from_x = nn.Linear(layer_in, rnn_size)(x)
    local from_h = nn.Linear(rnn_size, rnn_size)(prev_h)
    table.insert(outputs, nn.Tanh()(nn.CAddTable(){from_x, from_h}))
  end

  return nn.gModule(inputs, outputs)
end

return CharRNN
