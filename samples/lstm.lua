-- lstm.lua: the tutorial's LSTM cell (input_size 3, rnn_size 2, gates cut out with Narrow).
-- Inputs x, prev_c, prev_h (Bx3, Bx2, Bx2); outputs next_c, next_h. Shapes follow from the Linears:
--   graphc compile samples/lstm.lua -o lstm.py
require 'nngraph'

input_size = 3
rnn_size = 2

inputs = {}
table.insert(inputs, nn.Identity()())   -- network input
table.insert(inputs, nn.Identity()())   -- c at time t-1
table.insert(inputs, nn.Identity()())   -- h at time t-1
input = inputs[1]
prev_c = inputs[2]
prev_h = inputs[3]

i2h = nn.Linear(input_size, 4 * rnn_size)(input)  -- input to hidden
h2h = nn.Linear(rnn_size, 4 * rnn_size)(prev_h)   -- hidden to hidden
preactivations = nn.CAddTable()({i2h, h2h})       -- i2h + h2h

-- gates
pre_sigmoid_chunk = nn.Narrow(2, 1, 3 * rnn_size)(preactivations)
all_gates = nn.Sigmoid()(pre_sigmoid_chunk)

-- input
in_chunk = nn.Narrow(2, 3 * rnn_size + 1, rnn_size)(preactivations)
in_transform = nn.Tanh()(in_chunk)

in_gate = nn.Narrow(2, 1, rnn_size)(all_gates)
forget_gate = nn.Narrow(2, rnn_size + 1, rnn_size)(all_gates)
out_gate = nn.Narrow(2, 2 * rnn_size + 1, rnn_size)(all_gates)

-- previous cell state contribution
c_forget = nn.CMulTable()({forget_gate, prev_c})
-- input contribution
c_input = nn.CMulTable()({in_gate, in_transform})
-- next cell state
next_c = nn.CAddTable()({c_forget, c_input})

c_transform = nn.Tanh()(next_c)
next_h = nn.CMulTable()({out_gate, c_transform})

-- module outputs
outputs = {}
table.insert(outputs, next_c)
table.insert(outputs, next_h)

-- packs the graph into a convenient module with standard API (:forward(), :backward())
LSTM = nn.gModule(inputs, outputs)
