-- lenet_bn.lua: LeNet (samples/lenet.lua) with batch normalization after each convolution and
-- the first Linear, for the data-parallel tests (statistics are per rank: see the README).
require 'nn'

net = nn.Sequential()
net:add(nn.SpatialConvolution(1, 6, 5, 5))
net:add(nn.SpatialBatchNormalization(6))
net:add(nn.ReLU())
net:add(nn.SpatialMaxPooling(2, 2, 2, 2))
net:add(nn.SpatialConvolution(6, 16, 5, 5))
net:add(nn.SpatialBatchNormalization(16))
net:add(nn.ReLU())
net:add(nn.SpatialMaxPooling(2, 2, 2, 2))
net:add(nn.View(16 * 5 * 5))
net:add(nn.Linear(16 * 5 * 5, 120))
net:add(nn.BatchNormalization(120))
net:add(nn.ReLU())
net:add(nn.Linear(120, 84))
net:add(nn.ReLU())
net:add(nn.Linear(84, 10))
net:add(nn.LogSoftMax())
