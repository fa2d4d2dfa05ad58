-- highway_lm.lua: an embedding, two highway layers (from highway_layers.lua) and a softmax
-- over the vocabulary: a model spread over two files.
--   graphc compile samples/highway_lm.lua -o highway_lm.py
local layers = require 'highway_layers'

vocab = 30
size = 16

local words = nn.Identity()()
local x = nn.LookupTable(vocab, size)(words)
for i = 1, 2 do
  x = layers.highway(x, size)
end
local logprobs = nn.LogSoftMax()(nn.Linear(size, vocab)(x))
return nn.gModule({words}, {logprobs})
