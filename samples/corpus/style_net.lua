-- style_net.lua: an image transformation network in the style of the fast-neural-style
-- models (our own text, small sizes): convolutions on reflection-padded input, a strided
-- downsampling, a residual block whose convolution is dilated (on replication padding),
-- nearest-neighbour upsampling back to the input size, and a 9x9 output convolution.
-- Input and output: B x 3 x 12 x 12.
--   graphc compile samples/corpus/style_net.lua --entry "StyleNet.build(4)" --shape input1=Bx3x12x12 -o style_net.py
require 'nn'
require 'nngraph'

local StyleNet = {}

-- reflection padding keeps the image size without a zero border
local function conv_block(x, nin, nout, k, stride)
   local pad = math.floor(k / 2)
   local h = nn.SpatialReflectionPadding(pad, pad, pad, pad)(x)
   h = nn.SpatialConvolution(nin, nout, k, k, stride, stride)(h)
   return nn.ReLU(true)(h)
end

local function dilated_residual(x, n, dilation)
   local h = nn.SpatialReplicationPadding(dilation, dilation, dilation, dilation)(x)
   h = nn.SpatialDilatedConvolution(n, n, 3, 3, 1, 1, 0, 0, dilation, dilation)(h)
   return nn.CAddTable()({x, h})
end

function StyleNet.build(width)
   local input = nn.Identity()()
   local h = conv_block(input, 3, width, 5, 1)
   h = conv_block(h, width, 2 * width, 3, 2)
   h = dilated_residual(h, 2 * width, 2)
   h = nn.SpatialUpSamplingNearest(2)(h)
   h = conv_block(h, 2 * width, width, 3, 1)
   h = nn.SpatialReflectionPadding(4, 4, 4, 4)(h)
   local out = nn.Tanh()(nn.SpatialConvolution(width, 3, 9, 9)(h))
   return nn.gModule({input}, {out})
end

return StyleNet
