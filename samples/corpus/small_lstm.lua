-- small_lstm.lua: a one-layer LSTM step in the style of oxford-cs-ml-2015/practical6 LSTM.lua
-- (our own text, small sizes): the sizes come in an `opt` table, and a global function defined
-- inside the builder closes over the builder's local input nodes and is called once per gate.
-- Inputs: x (B x opt.input_size), prev_c, prev_h (B x opt.rnn_size); outputs: next_c, next_h.
--   graphc compile samples/corpus/small_lstm.lua --entry "LSTM.lstm({input_size = 3, rnn_size = 4})" -o small_lstm.py
require 'nn'
require 'nngraph'

local LSTM = {}

function LSTM.lstm(opt)
  local x = nn.Identity()()
  local prev_c = nn.Identity()()
  local prev_h = nn.Identity()()

  -- each call makes a fresh pair of Linears on x and prev_h
  function preactivation()
    local from_x = nn.Linear(opt.input_size, opt.rnn_size)(x)
    local from_h = nn.Linear(opt.rnn_size, opt.rnn_size)(prev_h)
    return nn.CAddTable()({from_x, from_h})
  end

  local in_gate = nn.Sigmoid()(preactivation())
  local forget_gate = nn.Sigmoid()(preactivation())
  local out_gate = nn.Sigmoid()(preactivation())
  local candidate = nn.Tanh()(preactivation())

  local next_c = nn.CAddTable()({
    nn.CMulTable()({forget_gate, prev_c}),
    nn.CMulTable()({in_gate, candidate}),
  })
  local next_h = nn.CMulTable()({out_gate, nn.Tanh()(next_c)})

  return nn.gModule({x, prev_c, prev_h}, {next_c, next_h})
end

return LSTM
