-- mlp.lua: a 784-512-512-10 multilayer perceptron (MNIST-sized) with ReLUs and a LogSoftMax,
-- as an nn.Sequential. The first Linear fixes the input shape (Bx784):
--   graphc compile benchmarks/specs/mlp.lua -o mlp.py
require 'nn'

net = nn.Sequential()
net:add(nn.Linear(784, 512))
net:add(nn.ReLU())
net:add(nn.Linear(512, 512))
net:add(nn.ReLU())
net:add(nn.Linear(512, 10))
net:add(nn.LogSoftMax())

return net
