-- msr_init.lua: a small VGG-style convnet in the style of szagoruyko/cifar.torch
-- models/vgg_bn_drop.lua and facebook/fb.resnet.torch models/resnet.lua (our own text, small
-- sizes): blocks added by a builder that returns the net (so `:add` chains on its result), then
-- an initialisation after construction that walks the model with findModules: MSR (He) normal
-- weights from Torch's fields kW, kH and nOutputPlane, zeroed biases, the first convolution's
-- bias removed (`v.bias = nil`, as resnet.lua does for cudnn), BatchNormalization weights set
-- to 1, and the classifier's last bias zeroed through net:get(i).modules[j].
-- Input: B x 3 x 8 x 8 images; output: B x 5 scores.
--   graphc compile samples/corpus/msr_init.lua --shape input1=Bx3x8x8 -o msr_init.py
require 'nn'

local net = nn.Sequential()

local function ConvBNReLU(nInputPlane, nOutputPlane)
  net:add(nn.SpatialConvolution(nInputPlane, nOutputPlane, 3, 3, 1, 1, 1, 1))
  net:add(nn.SpatialBatchNormalization(nOutputPlane, 1e-3))
  net:add(nn.ReLU(true))
  return net
end

ConvBNReLU(3, 4):add(nn.Dropout(0.3))
ConvBNReLU(4, 4)
net:add(nn.SpatialMaxPooling(2, 2, 2, 2))
ConvBNReLU(4, 6)
net:add(nn.SpatialMaxPooling(2, 2, 2, 2))
net:add(nn.View(6 * 2 * 2))

local classifier = nn.Sequential()
classifier:add(nn.Linear(24, 10))
classifier:add(nn.BatchNormalization(10))
classifier:add(nn.ReLU(true))
classifier:add(nn.Linear(10, 5))
net:add(classifier)

local function MSRinit(model)
  for _, v in pairs(model:findModules('nn.SpatialConvolution')) do
    local n = v.kW * v.kH * v.nOutputPlane
    v.weight:normal(0, math.sqrt(2 / n))
    if v.nInputPlane == 3 then
      v.bias = nil
    else
      v.bias:zero()
    end
  end
  for _, v in pairs(model:findModules('nn.SpatialBatchNormalization')) do
    v.weight:fill(1)
    v.bias:zero()
  end
end

MSRinit(net)
local last = net:get(net:size())
last.modules[#last.modules].bias:zero()

return net:float()
