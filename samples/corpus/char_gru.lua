-- char_gru.lua: one time step of a multi-layer character-level GRU, in the style of
-- karpathy/char-rnn model/GRU.lua (our own text, small sizes): a global helper function defined
-- inside the builder that closes over rnn_size and is called twice per layer, 1 - z written as
-- AddConstant(1)(MulConstant(-1)(z)), a one-hot input, dropout between layers, a LogSoftMax
-- decoder. Inputs: x (B indices, 1-based), prev_h[L]; outputs: next_h[L], log-probabilities.
--   graphc compile samples/corpus/char_gru.lua --entry "CharGRU.step(5, 3, 2, 0.5)" -o char_gru.py
require 'nn'
require 'nngraph'

local CharGRU = {}

function CharGRU.step(vocab_size, rnn_size, n, dropout)
  dropout = dropout or 0

  local inputs = {}
  table.insert(inputs, nn.Identity()())     -- x
  for L = 1, n do
    table.insert(inputs, nn.Identity()())   -- prev_h[L]
  end

  -- global on purpose: char-rnn defines it this way
  function gate_sum(in_size, xv, hv)
    local from_x = nn.Linear(in_size, rnn_size)(xv)
    local from_h = nn.Linear(rnn_size, rnn_size)(hv)
    return nn.CAddTable()({from_x, from_h})
  end

  local x, layer_in
  local outputs = {}
  for L = 1, n do
    local prev_h = inputs[L + 1]
    if L == 1 then
      x = nn.OneHot(vocab_size)(inputs[1])
      layer_in = vocab_size
    else
      x = outputs[L - 1]
      if dropout > 0 then x = nn.Dropout(dropout)(x) end
      layer_in = rnn_size
    end

    local update_gate = nn.Sigmoid()(gate_sum(layer_in, x, prev_h))
    local reset_gate = nn.Sigmoid()(gate_sum(layer_in, x, prev_h))
    local reset_h = nn.CMulTable()({reset_gate, prev_h})
    local from_h = nn.Linear(rnn_size, rnn_size)(reset_h)   -- made before from_x: order matters
    local from_x = nn.Linear(layer_in, rnn_size)(x)
    local candidate = nn.Tanh()(nn.CAddTable()({from_x, from_h}))
    local keep = nn.AddConstant(1, false)(nn.MulConstant(-1, false)(update_gate))
    local next_h = nn.CAddTable()({
      nn.CMulTable()({update_gate, candidate}),
      nn.CMulTable()({keep, prev_h}),
    })
    table.insert(outputs, next_h)
  end

  local top = outputs[#outputs]
  if dropout > 0 then top = nn.Dropout(dropout)(top) end
  local scores = nn.Linear(rnn_size, vocab_size)(top)
  table.insert(outputs, nn.LogSoftMax()(scores))

  return nn.gModule(inputs, outputs)
end

return CharGRU
