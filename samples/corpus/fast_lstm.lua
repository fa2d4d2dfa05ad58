-- fast_lstm.lua: an LSTM step built two ways, in the style of Element-Research/rnn FastLSTM.lua
-- (our own text, small sizes): an object whose fields hold the two gate Linears (`self.i2g`,
-- `self.o2g`, the second without bias) and whose methods build either an nngraph gModule
-- (`self.i2g(x)`, `local x, prev_h, prev_c = unpack(inputs)`, Reshape(4, n) +
-- SplitTable(2):split(4)) or the same cell from nn containers (NarrowTable, ParallelTable,
-- SplitTable(1, 2), ConcatTable, FlattenTable, SelectTable). Gate order: input, candidate,
-- forget, output. Inputs {x (B x inputSize), prev_h, prev_c (B x outputSize)}; outputs
-- {next_h, next_c}. Both builds have the same parameters (i2g weight, bias; o2g weight).
--   graphc compile samples/corpus/fast_lstm.lua --entry "FastLSTM.new(3, 4, true):buildModel()" -o fast_lstm.py
--   graphc compile samples/corpus/fast_lstm.lua --entry "FastLSTM.new(3, 4, false):buildModel()" \
--     --shape "input1={Bx3,Bx4,Bx4}" -o fast_lstm_nn.py
require 'nn'

local FastLSTM = {}

-- no metatables in graphc specs: copy the methods into the new object
function FastLSTM.new(inputSize, outputSize, usenngraph)
  local self = {inputSize = inputSize, outputSize = outputSize, usenngraph = usenngraph}
  for k, v in pairs(FastLSTM) do
    if k ~= 'new' then self[k] = v end
  end
  return self
end

function FastLSTM:buildModel()
  -- all four gates from one Linear per input
  self.i2g = nn.Linear(self.inputSize, 4 * self.outputSize)
  self.o2g = nn.Linear(self.outputSize, 4 * self.outputSize, false)
  if self.usenngraph then
    require 'nngraph'
    return self:nngraphModel()
  end

  local gates = nn.Sequential()
  gates:add(nn.NarrowTable(1, 2))
  gates:add(nn.ParallelTable():add(self.i2g):add(self.o2g))
  gates:add(nn.CAddTable())
  gates:add(nn.Reshape(4, self.outputSize))
  gates:add(nn.SplitTable(1, 2))
  gates:add(nn.ParallelTable():add(nn.Sigmoid()):add(nn.Tanh()):add(nn.Sigmoid()):add(nn.Sigmoid()))

  local step = nn.Sequential()
  step:add(nn.ConcatTable():add(gates):add(nn.SelectTable(3)))
  step:add(nn.FlattenTable())            -- {in, candidate, forget, out, prev_c}

  local written = nn.Sequential():add(nn.NarrowTable(1, 2)):add(nn.CMulTable())
  local kept = nn.Sequential()
    :add(nn.ConcatTable():add(nn.SelectTable(3)):add(nn.SelectTable(5)))
    :add(nn.CMulTable())
  local next_c = nn.Sequential()
    :add(nn.ConcatTable():add(written):add(kept))
    :add(nn.CAddTable())
  step:add(nn.ConcatTable():add(next_c):add(nn.SelectTable(4)))
  step:add(nn.FlattenTable())            -- {next_c, out}

  local squashed = nn.Sequential():add(nn.SelectTable(1)):add(nn.Tanh())
  local next_h = nn.Sequential()
    :add(nn.ConcatTable():add(squashed):add(nn.SelectTable(2)))
    :add(nn.CMulTable())
  step:add(nn.ConcatTable():add(next_h):add(nn.SelectTable(1)))
  return step
end

function FastLSTM:nngraphModel()
  assert(nngraph, "nngraph is needed")
  local inputs = {}
  table.insert(inputs, nn.Identity()())  -- x
  table.insert(inputs, nn.Identity()())  -- prev_h
  table.insert(inputs, nn.Identity()())  -- prev_c
  local x, prev_h, prev_c = unpack(inputs)

  local i2h = self.i2g(x):annotate{name = 'i2h'}
  local h2h = self.o2g(prev_h):annotate{name = 'h2h'}
  local sums = nn.CAddTable()({i2h, h2h})
  local g1, g2, g3, g4 = nn.SplitTable(2)(nn.Reshape(4, self.outputSize)(sums)):split(4)
  local in_gate, candidate = nn.Sigmoid()(g1), nn.Tanh()(g2)
  local forget_gate, out_gate = nn.Sigmoid()(g3), nn.Sigmoid()(g4)
  local next_c = nn.CAddTable()({
    nn.CMulTable()({forget_gate, prev_c}),
    nn.CMulTable()({in_gate, candidate}),
  })
  local next_h = nn.CMulTable()({out_gate, nn.Tanh()(next_c)})
  return nn.gModule(inputs, {next_h, next_c})
end

return FastLSTM
