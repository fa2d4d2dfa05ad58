-- parallel.lua: the tutorial's nn.Parallel(2,1): slice the 10x2 input along dim 2,
-- Linear(10,3) on column 1, Linear(10,2) on column 2, join along dim 1 (output size 5).
--   graphc compile samples/parallel.lua --shape input1=10x2 -o parallel.py
require 'nn'

mlp = nn.Parallel(2,1);     -- iterate over dimension 2 of input
mlp:add(nn.Linear(10,3));   -- apply to first slice
mlp:add(nn.Linear(10,2))    -- apply to second slice
