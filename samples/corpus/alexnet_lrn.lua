-- alexnet_lrn.lua: an AlexNet-style classifier written as the cudnn-era ImageNet model files
-- were (our own text, small sizes): `require 'cudnn'` and cudnn.SpatialConvolution /
-- cudnn.ReLU / cudnn.SpatialMaxPooling (graphc's nn modules; the CUDA target is graphc's
-- --target), cross-map LRN, a zero padding that pads and one that crops (negative pads),
-- ReLU6, SpatialDropout of whole feature maps, then a classifier. The number of classes can
-- be set with -D nClasses=N. Input and output: B x 3 x 17 x 17 -> B x nClasses log-probabilities.
--   graphc compile samples/corpus/alexnet_lrn.lua --shape input1=Bx3x17x17 -o alexnet.py
require 'cudnn'
require 'cunn'

nClasses = 10

local features = nn.Sequential()
features:add(cudnn.SpatialConvolution(3, 8, 3, 3, 2, 2, 1, 1))       -- 8 x 9 x 9
features:add(cudnn.ReLU(true))
features:add(nn.SpatialCrossMapLRN(5, 0.0001, 0.75))
features:add(cudnn.SpatialMaxPooling(3, 3, 2, 2))                    -- 8 x 4 x 4
features:add(nn.SpatialZeroPadding(1, 1, 1, 1))                      -- 8 x 6 x 6
features:add(cudnn.SpatialConvolution(8, 12, 3, 3, 1, 1))            -- 12 x 4 x 4
features:add(nn.ReLU6(true))
features:add(nn.SpatialDropout(0.2))
features:add(nn.SpatialZeroPadding(-1, -1, -1, -1))                  -- 12 x 2 x 2 (crop)

local classifier = nn.Sequential()
classifier:add(nn.View(12 * 2 * 2))
classifier:add(nn.Dropout(0.5))
classifier:add(nn.Linear(12 * 2 * 2, nClasses))
classifier:add(cudnn.LogSoftMax())

local model = nn.Sequential():add(features):add(classifier)
cudnn.convert(model, cudnn)
return model
