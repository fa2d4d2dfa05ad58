-- A Neural Turing Machine read head: content addressing, interpolation, a circular shift,
-- sharpening, then a read, written as torch-ntm's NTM.lua builds its heads. Its custom
-- modules (SmoothCosineSimilarity, ScalarMulTable, CircularConvolution, PowTable, and its own
-- nn.Normalize) are Python plugins:
--   graphc compile samples/corpus/ntm_head.lua --plugin samples/plugins/ntm.py \
--     --shape memory=Bx8x5 --shape prev_weights=Bx8
require 'nngraph'

cont_dim = 6     -- controller output
mem_cols = 5     -- memory rows are given by the memory input
shift_range = 1

local memory = nn.Identity()():annotate{name = 'memory'}
local prev_weights = nn.Identity()():annotate{name = 'prev_weights'}
local control = nn.Identity()():annotate{name = 'control'}

local key = nn.Tanh()(nn.Linear(cont_dim, mem_cols)(control))
local shift = nn.SoftMax()(nn.Linear(cont_dim, 2 * shift_range + 1)(control))
local beta = nn.SoftPlus()(nn.Linear(cont_dim, 1)(control))
local gate = nn.Sigmoid()(nn.Linear(cont_dim, 1)(control))
local gamma = nn.AddConstant(1)(nn.SoftPlus()(nn.Linear(cont_dim, 1)(control)))

local similarity = nn.SmoothCosineSimilarity(){memory, key}
local content = nn.SoftMax()(nn.ScalarMulTable(){similarity, beta})
local gated = nn.CAddTable(){
  nn.ScalarMulTable(){content, gate},
  nn.ScalarMulTable(){prev_weights, nn.AddConstant(1)(nn.MulConstant(-1)(gate))}
}
local shifted = nn.CircularConvolution(){gated, shift}
local sharpened = nn.PowTable(){shifted, gamma}
local weights = nn.Normalize()(sharpened)
local read = nn.MixtureTable(){weights, memory}

return nn.gModule({memory, prev_weights, control}, {weights, read})
