-- convnet_tutorial.lua: the convnet of torch/tutorials 2_supervised/2_model.lua in its style
-- (our own text, small sizes): two stages of SpatialConvolutionMM, Tanh, L2 pooling
-- (SpatialLPPooling) and local subtractive normalization with a Gaussian kernel from
-- `image.gaussian1D`, then a 2-layer classifier. As in the tutorial, `opt` and `noutputs`
-- come from the training script: here from a --prelude file, with -D opt.FIELD overrides.
-- Input and output: B x 3 x 16 x 16 -> B x noutputs.
--   graphc compile samples/corpus/convnet_tutorial.lua \
--   --prelude samples/corpus/preludes/tutorial_opts.lua --shape input1=Bx3x16x16 -o convnet.py
--   graphc compile samples/corpus/convnet_tutorial.lua \
--   --prelude samples/corpus/preludes/tutorial_opts.lua -D opt.size=tiny --shape input1=Bx3x16x16 -o convnet_tiny.py
require 'torch'
require 'image'
require 'nn'

-- input dimensions
local nfeats = 3
local width = 16
local height = 16

-- hidden units, filter sizes
local nstates = {8, 8, 16}
if opt.size == 'tiny' then
   nstates = {4, 4, 8}
end
local filtsize = 3
local poolsize = 2
local normkernel = image.gaussian1D(5)

if opt.model == 'convnet' then
   model = nn.Sequential()

   -- stage 1 : filter bank -> squashing -> L2 pooling -> normalization
   model:add(nn.SpatialConvolutionMM(nfeats, nstates[1], filtsize, filtsize))
   model:add(nn.Tanh())
   model:add(nn.SpatialLPPooling(nstates[1], 2, poolsize, poolsize, poolsize, poolsize))
   model:add(nn.SpatialSubtractiveNormalization(nstates[1], normkernel))

   -- stage 2 : filter bank -> squashing -> L2 pooling -> normalization
   model:add(nn.SpatialConvolutionMM(nstates[1], nstates[2], filtsize, filtsize))
   model:add(nn.Tanh())
   model:add(nn.SpatialLPPooling(nstates[2], 2, poolsize, poolsize, poolsize, poolsize))
   model:add(nn.SpatialSubtractiveNormalization(nstates[2], normkernel))

   -- stage 3 : standard 2-layer neural network
   local side = ((width - filtsize + 1) / poolsize - filtsize + 1) / poolsize
   side = math.floor(side)
   model:add(nn.Reshape(nstates[2] * side * side))
   model:add(nn.Dropout(opt.dropout))
   model:add(nn.Linear(nstates[2] * side * side, nstates[3]))
   model:add(nn.Tanh())
   model:add(nn.Linear(nstates[3], noutputs))
else
   error('unknown -model')
end
