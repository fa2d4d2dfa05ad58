-- unet.lua: a small U-Net generator and a PatchGAN discriminator in the style of phillipi/pix2pix
-- models.lua (our own text, small sizes): all globals, graphs written with nngraph's `-`
-- operator (`- m` makes the input node, `x - m1 - m2` chains, `{a, b} - nn.JoinTable(2)` joins a
-- skip connection), strided 4x4 convolutions down and SpatialFullConvolution up, LeakyReLU and
-- ReLU with inplace = true, SpatialBatchNormalization, Dropout; the discriminator is an
-- nn.Sequential grown in a loop with math.min(2^n, 8) channel multipliers.
--   graphc compile samples/corpus/unet.lua --entry "unet(2, 1, 2)" --shape input1=Bx2x16x16 -o unet.py
--   graphc compile samples/corpus/unet.lua --entry "patch_discriminator(2, 1, 2, 2)" --shape input1=Bx3x16x16 -o patch_d.py
require 'nngraph'

dropout = 0.5

-- input_nc x 16 x 16 -> output_nc x 16 x 16
function unet(input_nc, output_nc, ngf)
  -- encoder: 16 -> 8 -> 4 -> 2 -> 1
  enc1 = - nn.SpatialConvolution(input_nc, ngf, 4, 4, 2, 2, 1, 1)
  enc2 = enc1 - nn.LeakyReLU(0.2, true) - nn.SpatialConvolution(ngf, ngf * 2, 4, 4, 2, 2, 1, 1)
              - nn.SpatialBatchNormalization(ngf * 2)
  enc3 = enc2 - nn.LeakyReLU(0.2, true) - nn.SpatialConvolution(ngf * 2, ngf * 4, 4, 4, 2, 2, 1, 1)
              - nn.SpatialBatchNormalization(ngf * 4)
  enc4 = enc3 - nn.LeakyReLU(0.2, true) - nn.SpatialConvolution(ngf * 4, ngf * 4, 4, 4, 2, 2, 1, 1)
              - nn.SpatialBatchNormalization(ngf * 4)

  -- decoder: 1 -> 2 -> 4 -> 8 -> 16, each step joined with the encoder output of its size
  dec1_ = enc4 - nn.ReLU(true) - nn.SpatialFullConvolution(ngf * 4, ngf * 4, 4, 4, 2, 2, 1, 1)
               - nn.SpatialBatchNormalization(ngf * 4) - nn.Dropout(dropout)
  dec1 = {dec1_, enc3} - nn.JoinTable(2)
  dec2_ = dec1 - nn.ReLU(true) - nn.SpatialFullConvolution(ngf * 4 * 2, ngf * 2, 4, 4, 2, 2, 1, 1)
               - nn.SpatialBatchNormalization(ngf * 2) - nn.Dropout(dropout)
  dec2 = {dec2_, enc2} - nn.JoinTable(2)
  dec3_ = dec2 - nn.ReLU(true) - nn.SpatialFullConvolution(ngf * 2 * 2, ngf, 4, 4, 2, 2, 1, 1)
               - nn.SpatialBatchNormalization(ngf)
  dec3 = {dec3_, enc1} - nn.JoinTable(2)
  dec4 = dec3 - nn.ReLU(true) - nn.SpatialFullConvolution(ngf * 2, output_nc, 4, 4, 2, 2, 1, 1)

  out = dec4 - nn.Tanh()
  netG = nn.gModule({enc1}, {out})
  return netG
end

-- (input_nc + output_nc) x 16 x 16 -> 1 x 2 x 2 patch scores
function patch_discriminator(input_nc, output_nc, ndf, n_layers)
  local netD = nn.Sequential()
  netD:add(nn.SpatialConvolution(input_nc + output_nc, ndf, 4, 4, 2, 2, 1, 1))
  netD:add(nn.LeakyReLU(0.2, true))
  mult = 1
  for n = 1, n_layers - 1 do
    prev_mult = mult
    mult = math.min(2^n, 8)
    netD:add(nn.SpatialConvolution(ndf * prev_mult, ndf * mult, 4, 4, 2, 2, 1, 1))
    netD:add(nn.SpatialBatchNormalization(ndf * mult)):add(nn.LeakyReLU(0.2, true))
  end
  prev_mult = mult
  mult = math.min(2^n_layers, 8)
  netD:add(nn.SpatialConvolution(ndf * prev_mult, ndf * mult, 4, 4, 1, 1, 1, 1))
  netD:add(nn.SpatialBatchNormalization(ndf * mult)):add(nn.LeakyReLU(0.2, true))
  netD:add(nn.SpatialConvolution(ndf * mult, 1, 4, 4, 1, 1, 1, 1))
  netD:add(nn.Sigmoid())
  return netD
end
