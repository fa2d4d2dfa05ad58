-- nngraph_run.lua: a graph built and then run at spec time, in the style of the torch/nngraph
-- README's examples (our own text, small sizes): two inputs, a shared sum feeding two outputs,
-- spec-time data from torch.rand, gmod:updateOutput / updateGradInput / accGradParameters /
-- forward / backward on it (graphc compiles the module for those shapes and runs the
-- generated numpy code), print of the results (to stderr), and graph.dot, which a spec skips
-- with a note (draw it with `graphc graph`). The compiled model is the gModule.
-- Inputs: B x 6 and B x 4; outputs: B x 1 twice.
--   graphc compile samples/corpus/nngraph_run.lua -o nngraph_run.py
require 'nngraph'

h1 = nn.Linear(6, 5)()
h2 = nn.Linear(4, 3)()
hh1 = nn.Linear(5, 1)(nn.Tanh()(h1))
hh2 = nn.Linear(3, 1)(nn.Tanh()(h2))
madd = nn.CAddTable()({hh1, hh2})
oA = nn.Sigmoid()(madd)
oB = nn.Tanh()(madd)
gmod = nn.gModule({h1, h2}, {oA, oB})

x1 = torch.rand(6)
x2 = torch.rand(4)
out = gmod:updateOutput({x1, x2})
gin = gmod:updateGradInput({x1, x2}, {torch.ones(1), torch.ones(1)})
gmod:accGradParameters({x1, x2}, {torch.ones(1), torch.ones(1)})
print(out[1], out[2], gin[1]:size(1), gin[2]:size(1))

-- the same graph run on a batch of 3
local y = gmod:forward({torch.rand(3, 6), torch.rand(3, 4)})
local g = gmod:backward({torch.rand(3, 6), torch.rand(3, 4)}, {torch.ones(3, 1), torch.ones(3, 1)})
assert(y[1]:size(1) == 3 and g[2]:size(2) == 4)

graph.dot(gmod.fg, 'Big MLP')
