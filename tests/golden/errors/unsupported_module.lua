require 'nn'
local net = nn.Sequential()
net:add(nn.SpatialConvolutionMM(1, 6, 5, 5))
return net
