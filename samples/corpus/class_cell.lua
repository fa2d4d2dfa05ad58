-- class_cell.lua: a recurrent cell written as a class, in the style of Element-Research/rnn
-- FastLSTM.lua and harvardnlp/seq2seq-attn s2sa/models.lua + memory.lua (our own text, small
-- sizes): methods added to nn.Module for every module (memory.lua's reuseMem/usePrealloc,
-- here bookkeeping that returns self), a torch.class deriving nn.gModule whose __init builds
-- its graph with its own methods and fields (self:gate, self.hiddenSize) and ends with
-- parent.__init(self, inputs, outputs), a subclass overriding a method, and an unrolled model:
-- the cell's second step is cell:clone('weight', 'bias'), so both steps use one set of
-- weights (their gradients summed). The cell: z = sigmoid(W_z x + U_z h), c = tanh(W_c x +
-- U_c h), h' = (1 - z) * h + z * c.
-- Inputs: x1, x2 (B x 3), h0 (B x 4); outputs: B x 2 scores and the last state B x 4.
--   graphc compile samples/corpus/class_cell.lua -o class_cell.py
require 'nn'
require 'nngraph'

function nn.Module:reuseMem()
  self.reuse = true
  return self
end

function nn.Module:usePrealloc(name)
  if string.find(name, "reuse") then
    self:reuseMem()
  end
  return self
end

local GatedCell, parent = torch.class('nn.GatedCell', 'nn.gModule')
GatedCell.candidate = nn.Tanh

function GatedCell:__init(inputSize, hiddenSize)
  self.inputSize, self.hiddenSize = inputSize, hiddenSize
  local x = nn.Identity()()
  local prev_h = nn.Identity()()
  local z = self:gate(x, prev_h, nn.Sigmoid(), 'z-reuse')
  local c = self:gate(x, prev_h, self.candidate(), 'c')
  local next_h = nn.CAddTable()({
    nn.CMulTable()({nn.AddConstant(1)(nn.MulConstant(-1)(z)), prev_h}),
    nn.CMulTable()({z, c})
  })
  parent.__init(self, {x, prev_h}, {next_h})
end

function GatedCell:gate(x, h, f, name)
  local i2h = nn.Linear(self.inputSize, self.hiddenSize):usePrealloc(name .. '_i2h')(x)
  local h2h = nn.Linear(self.hiddenSize, self.hiddenSize, false):usePrealloc(name .. '_h2h')(h)
  return f(nn.CAddTable()({i2h, h2h}))
end

-- a subclass that only changes the candidate's nonlinearity
local SoftCell = torch.class('nn.SoftCell', 'nn.GatedCell')
SoftCell.candidate = nn.SoftSign

local cell = nn.SoftCell(3, 4)
assert(torch.isTypeOf(cell, 'nn.gModule') and torch.type(cell) == 'nn.SoftCell')
local step2 = cell:clone('weight', 'bias')

local x1, x2, h0 = nn.Identity()(), nn.Identity()(), nn.Identity()()
local h1 = cell({x1, h0})
local h2 = step2({x2, h1})
local scores = nn.Linear(4, 2)(h2)
return nn.gModule({x1, x2, h0}, {scores, h2})
