-- caption_lstm.lua: the LSTM core of a captioning model, in the style of karpathy/neuraltalk2
-- misc/LSTM.lua (our own text, small sizes): like char-rnn's LSTM but the input is an
-- embedding vector (no one-hot), the decoder size differs from the input size, and the dropout
-- nodes are annotated 'drop_'..L / 'drop_final'. Inputs: x (B x input_size), prev_c[L],
-- prev_h[L]; outputs: next_c[L], next_h[L], log-probabilities (B x output_size).
--   graphc compile samples/corpus/caption_lstm.lua --entry "LSTM.lstm(3, 6, 4, 2, 0.5)" -o caption_lstm.py
require 'nn'
require 'nngraph'

local LSTM = {}

function LSTM.lstm(input_size, output_size, rnn_size, n, dropout)
  dropout = dropout or 0

  local inputs = {}
  table.insert(inputs, nn.Identity()())     -- x: the word or image embedding
  for L = 1, n do
    table.insert(inputs, nn.Identity()())   -- prev_c[L]
    table.insert(inputs, nn.Identity()())   -- prev_h[L]
  end

  local x, layer_in
  local outputs = {}
  for L = 1, n do
    local prev_c, prev_h = inputs[2*L], inputs[2*L + 1]
    if L == 1 then
      x, layer_in = inputs[1], input_size
    else
      x = outputs[2*(L-1)]
      if dropout > 0 then x = nn.Dropout(dropout)(x):annotate{name = 'drop_' .. L} end
      layer_in = rnn_size
    end
    local i2h = nn.Linear(layer_in, 4 * rnn_size)(x):annotate{name = 'i2h_' .. L}
    local h2h = nn.Linear(rnn_size, 4 * rnn_size)(prev_h):annotate{name = 'h2h_' .. L}
    local a, b, c, d = nn.SplitTable(2)(nn.Reshape(4, rnn_size)(nn.CAddTable()({i2h, h2h}))):split(4)
    local in_gate, forget_gate, out_gate = nn.Sigmoid()(a), nn.Sigmoid()(b), nn.Sigmoid()(c)
    local candidate = nn.Tanh()(d)
    local next_c = nn.CAddTable()({
      nn.CMulTable()({forget_gate, prev_c}),
      nn.CMulTable()({in_gate, candidate}),
    })
    local next_h = nn.CMulTable()({out_gate, nn.Tanh()(next_c)})
    table.insert(outputs, next_c)
    table.insert(outputs, next_h)
  end

  local top = outputs[#outputs]
  if dropout > 0 then top = nn.Dropout(dropout)(top):annotate{name = 'drop_final'} end
  local proj = nn.Linear(rnn_size, output_size)(top):annotate{name = 'decoder'}
  table.insert(outputs, nn.LogSoftMax()(proj))

  return nn.gModule(inputs, outputs)
end

return LSTM
