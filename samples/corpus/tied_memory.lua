-- tied_memory.lua: an end-to-end memory network in the style of facebookarchive/MemNN
-- MemN2N-lang-model/model.lua (our own text, small sizes): a bias-free Linear written as a
-- torch.class deriving nn.Linear (the file's LinearNB), hops built in a loop over a table that
-- starts at index 0, the hop projections collected in a share list, and the tying done after
-- the gModule is built (and after model:cuda(), as that file insists) through each node's
-- data.module: every hop's projection shares the first one's weight, its gradients summed.
-- Inputs: input1 the query B x d, input2 the target word B, input3 the memory words B x M.
-- Output: the summed negative log-likelihood (1).
--   graphc compile samples/corpus/tied_memory.lua --entry "build_model({nwords = 7, edim = 4, memsize = 3, nhop = 3})" --shape input1=Bx4 --shape input3=Bx3 -o tied_memory.py
require 'nn'
require 'nngraph'

local LinearNB, parent = torch.class('nn.LinearNB', 'nn.Linear')

function LinearNB:__init(inputSize, outputSize)
  parent.__init(self, inputSize, outputSize, false)
end

local function build_memory(params, input, context)
  local hid = {}
  hid[0] = input
  local shareList = {}
  shareList[1] = {}

  local Ain = nn.LookupTable(params.nwords, params.edim)(context)   -- B x M x d
  local Bin = nn.LookupTable(params.nwords, params.edim)(context)

  for h = 1, params.nhop do
    local hid3dim = nn.View(1, -1):setNumInputDims(1)(hid[h - 1])  -- B x 1 x d
    local Aout = nn.MM(false, true)({hid3dim, Ain})                 -- B x 1 x M
    local P = nn.SoftMax()(nn.View(-1):setNumInputDims(2)(Aout))   -- B x M
    local probs3dim = nn.View(1, -1):setNumInputDims(1)(P)
    local Bout = nn.MM(false, false)({probs3dim, Bin})              -- B x 1 x d
    local C = nn.LinearNB(params.edim, params.edim)(hid[h - 1])
    table.insert(shareList[1], C)
    hid[h] = nn.CAddTable()({C, Bout})
  end
  return hid, shareList
end

function build_model(params)
  local input = nn.Identity()()
  local target = nn.Identity()()
  local context = nn.Identity()()
  local hid, shareList = build_memory(params, input, context)
  local z = nn.LinearNB(params.edim, params.nwords)(hid[#hid])
  local pred = nn.LogSoftMax()(z)
  local costl = nn.ClassNLLCriterion()
  costl.sizeAverage = false
  local cost = costl({pred, target})
  local model = nn.gModule({input, target, context}, {cost})
  model:cuda()
  for i = 1, #shareList do
    local m1 = shareList[i][1].data.module
    for j = 2, #shareList[i] do
      local m2 = shareList[i][j].data.module
      m2:share(m1, 'weight', 'bias', 'gradWeight', 'gradBias')
    end
  end
  return model
end
