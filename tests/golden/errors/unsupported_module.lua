require 'nn'
local net = nn.Sequential()
net:add(nn.SpatialConvolutionLocal(1, 6, 32, 32, 5, 5))
return net
