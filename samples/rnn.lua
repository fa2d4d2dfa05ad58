-- rnn.lua: the tutorial's vanilla RNN cell, next_h = tanh(W_ih x + W_hh prev_h + b).
-- Inputs: input1 = x (Bx3), input2 = prev_h (Bx2); shapes follow from the Linears:
--   graphc compile samples/rnn.lua -o rnn.py
require 'nngraph'

input_size = 3
rnn_size = 2

inputs = {}
table.insert(inputs, nn.Identity()()) -- network input
table.insert(inputs, nn.Identity()()) -- h at time t-1
input = inputs[1]
prev_h = inputs[2]

i2h = nn.Linear(input_size, rnn_size)(input) -- input to hidden
h2h = nn.Linear(rnn_size, rnn_size)(prev_h)  -- hidden to hidden
next_h = nn.Tanh()(nn.CAddTable(){i2h, h2h})

outputs = {}
table.insert(outputs, next_h)

-- packs the graph into a convenient module with standard API (:forward(), :backward())
RNN = nn.gModule(inputs, outputs)
