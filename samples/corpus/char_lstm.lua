-- char_lstm.lua: one time step of a multi-layer character-level LSTM, written in the style of
-- karpathy/char-rnn model/LSTM.lua (our own text, small sizes): a module table with a builder
-- function, 2n+1 inputs made in a loop, a one-hot input layer, per-layer Linears annotated
-- 'i2h_'..L / 'h2h_'..L (h2h without bias), the four gates cut with Reshape(4, rnn_size) +
-- SplitTable(2):split(4), optional recurrent batch normalization, dropout between layers and a
-- LogSoftMax decoder. Inputs: x (B character indices, 1-based), then prev_c[L], prev_h[L];
-- outputs: next_c[L], next_h[L], then the log-probabilities.
--   graphc compile samples/corpus/char_lstm.lua --entry "CharLSTM.step(5, 3, 2, 0.5)" -o char_lstm.py
--   graphc compile samples/corpus/char_lstm.lua --entry "CharLSTM.step(5, 3, 2, 0, true)" -o char_lstm_bn.py
require 'nn'
require 'nngraph'

-- char-rnn calls a global OneHot class (util/OneHot.lua); graphc has it as nn.OneHot
local OneHot = nn.OneHot

local CharLSTM = {}

function CharLSTM.step(vocab_size, rnn_size, n, dropout, bn)
  dropout = dropout or 0

  local inputs = {}
  table.insert(inputs, nn.Identity()())     -- x
  for L = 1, n do
    table.insert(inputs, nn.Identity()())   -- prev_c[L]
    table.insert(inputs, nn.Identity()())   -- prev_h[L]
  end

  local x, layer_in
  local outputs = {}
  for L = 1, n do
    local prev_c = inputs[2*L]
    local prev_h = inputs[2*L + 1]
    if L == 1 then
      x = OneHot(vocab_size)(inputs[1])
      layer_in = vocab_size
    else
      x = outputs[2*(L-1)]
      if dropout > 0 then x = nn.Dropout(dropout)(x) end
      layer_in = rnn_size
    end

    local norm_x, norm_h, norm_c
    if bn then
      norm_x = nn.BatchNormalization(4 * rnn_size, 1e-5, 0.1, true)
      norm_h = nn.BatchNormalization(4 * rnn_size, 1e-5, 0.1, true)
      norm_c = nn.BatchNormalization(rnn_size, 1e-5, 0.1, true)
    else
      norm_x, norm_h, norm_c = nn.Identity(), nn.Identity(), nn.Identity()
    end

    local i2h = norm_x(nn.Linear(layer_in, 4 * rnn_size)(x):annotate{name = 'i2h_' .. L})
    local h2h = norm_h(nn.Linear(rnn_size, 4 * rnn_size, false)(prev_h):annotate{name = 'h2h_' .. L})
    local preact = nn.CAddTable()({i2h, h2h})
    local chunks = nn.Reshape(4, rnn_size)(preact)
    local c1, c2, c3, c4 = nn.SplitTable(2)(chunks):split(4)
    local in_gate = nn.Sigmoid()(c1)
    local forget_gate = nn.Sigmoid()(c2)
    local out_gate = nn.Sigmoid()(c3)
    local candidate = nn.Tanh()(c4)

    local next_c = nn.CAddTable()({
      nn.CMulTable()({forget_gate, prev_c}),
      nn.CMulTable()({in_gate, candidate}),
    })
    local next_h = nn.CMulTable()({out_gate, nn.Tanh()(norm_c(next_c))})
    table.insert(outputs, next_c)
    table.insert(outputs, next_h)
  end

  local top = outputs[#outputs]
  if dropout > 0 then top = nn.Dropout(dropout)(top) end
  local scores = nn.Linear(rnn_size, vocab_size)(top):annotate{name = 'decoder'}
  table.insert(outputs, nn.LogSoftMax()(scores))

  return nn.gModule(inputs, outputs)
end

return CharLSTM
