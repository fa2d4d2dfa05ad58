-- wrong_a.lua / wrong_b.lua: two models with the same number of parameters (12) but different
-- layouts, for the test that broadcast_parameters refuses ranks with different models.
require 'nn'
net = nn.Sequential():add(nn.Linear(5, 2))
