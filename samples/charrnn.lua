-- charrnn.lua: one time step of a char-rnn style multi-layer LSTM (after Karpathy's
-- char-rnn model/LSTM.lua, written afresh). The file returns a module table; the model
-- is built by LSTM.lstm(input_size, rnn_size, n, dropout), so give graphc an --entry.
--
-- Inputs : input1 = x (B integer character indices, 1-based), then prev_c and prev_h of
--          each layer: input2 = prev_c[1], input3 = prev_h[1], input4 = prev_c[2], ...
-- Outputs: next_c and next_h of each layer (output1 = next_c[1], output2 = next_h[1], ...),
--          then the log-probabilities of the next character (output 2n+1, B x input_size).
--
-- Compiled as a recurrence over time (each next_c/next_h feeds the next step's prev_c/prev_h),
-- for a vocabulary of 65 characters, 128 units and 2 layers:
--   graphc compile samples/charrnn.lua --entry "LSTM.lstm(65, 128, 2, 0)" --shape input1=B \
--     --unroll T --state output1=input2 --state output2=input3 \
--     --state output3=input4 --state output4=input5 -o charrnn.py
-- samples/train_charrnn.py trains it on samples/data/tinyshakespeare.txt.
require 'nngraph'

local LSTM = {}

function LSTM.lstm(input_size, rnn_size, n, dropout)
  dropout = dropout or 0

  -- there are n+1 inputs: x, then prev_c and prev_h for every layer
  local inputs = {}
  table.insert(inputs, nn.Identity()()) -- x
  for L = 1, n do
    table.insert(inputs, nn.Identity()()) -- prev_c[L]
    table.insert(inputs, nn.Identity()()) -- prev_h[L]
  end

  local x, input_size_L
  local outputs = {}
  for L = 1, n do
    -- this layer's previous state
    local prev_c = inputs[L * 2]
    local prev_h = inputs[L * 2 + 1]
    -- the input of this layer
    if L == 1 then
      x = nn.OneHot(input_size)(inputs[1])
      input_size_L = input_size
    else
      x = outputs[(L - 1) * 2] -- next_h of the layer below
      if dropout > 0 then x = nn.Dropout(dropout)(x) end -- between layers only
      input_size_L = rnn_size
    end
    -- the four gates' pre-activations at once
    local i2h = nn.Linear(input_size_L, 4 * rnn_size)(x):annotate{name = 'i2h_' .. L}
    local h2h = nn.Linear(rnn_size, 4 * rnn_size)(prev_h):annotate{name = 'h2h_' .. L}
    local all_input_sums = nn.CAddTable()({i2h, h2h})

    local reshaped = nn.Reshape(4, rnn_size)(all_input_sums)
    local n1, n2, n3, n4 = nn.SplitTable(2)(reshaped):split(4)
    -- decode the gates
    local in_gate = nn.Sigmoid()(n1)
    local forget_gate = nn.Sigmoid()(n2)
    local out_gate = nn.Sigmoid()(n3)
    -- decode the write inputs
    local in_transform = nn.Tanh()(n4)
    -- perform the LSTM update
    local next_c = nn.CAddTable()({
      nn.CMulTable()({forget_gate, prev_c}),
      nn.CMulTable()({in_gate, in_transform})
    })
    -- gated cells form the output
    local next_h = nn.CMulTable()({out_gate, nn.Tanh()(next_c)})

    table.insert(outputs, next_c)
    table.insert(outputs, next_h)
  end

  -- the decoder: log-probabilities of the next character
  local top_h = outputs[#outputs]
  if dropout > 0 then top_h = nn.Dropout(dropout)(top_h) end
  local proj = nn.Linear(rnn_size, input_size)(top_h):annotate{name = 'decoder'}
  local logsoft = nn.LogSoftMax()(proj)
  table.insert(outputs, logsoft)

  return nn.gModule(inputs, outputs)
end

return LSTM
