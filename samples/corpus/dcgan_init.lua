-- dcgan_init.lua: a small DCGAN generator in the style of soumith/dcgan.torch main.lua's netG
-- (our own text, small sizes), initialised the way that file does after building: a
-- `weights_init(m)` function applied to every module with net:apply, choosing by
-- torch.type(m) and string find, drawing the convolution weights from N(0, 0.02^2) and the
-- BatchNormalization weights from N(1, 0.02^2), biases filled with 0 (`if m.weight then`:
-- modules without parameters are skipped). The noise vector is viewed as nz x 1 x 1.
-- Input: B x nz noise; output: B x 3 x 8 x 8 images in (-1, 1).
--   graphc compile samples/corpus/dcgan_init.lua --shape input1=Bx5 -o dcgan_init.py
require 'nn'

local function weights_init(m)
  local name = torch.type(m)
  if name:find('Convolution') then
    m.weight:normal(0.0, 0.02)
    m.bias:fill(0)
  elseif name:find('BatchNormalization') then
    if m.weight then m.weight:normal(1.0, 0.02) end
    if m.bias then m.bias:fill(0) end
  end
end

local nz, ngf, nc = 5, 4, 3

local netG = nn.Sequential()
netG:add(nn.View(nz, 1, 1):setNumInputDims(1))
-- nz x 1 x 1 -> (ngf*2) x 4 x 4
netG:add(nn.SpatialFullConvolution(nz, ngf * 2, 4, 4))
netG:add(nn.SpatialBatchNormalization(ngf * 2)):add(nn.ReLU(true))
-- (ngf*2) x 4 x 4 -> nc x 8 x 8
netG:add(nn.SpatialFullConvolution(ngf * 2, nc, 4, 4, 2, 2, 1, 1))
netG:add(nn.Tanh())

netG:apply(weights_init)

return netG
