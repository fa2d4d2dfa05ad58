-- wrong_b.lua: see wrong_a.lua (12 parameters too, laid out as 3x3 weights and 3 biases).
require 'nn'
net = nn.Sequential():add(nn.Linear(3, 3))
