-- char_cnn_sizes.lua: a character CNN in the style of yoonkim/lstm-char-cnn model/TDNN.lua and
-- LSTMTDNN.lua (our own text, small sizes): one temporal convolution per kernel width, max over
-- time, the feature maps joined, and the next layer's input size computed with a spec-time
-- tensor, `torch.Tensor(feature_maps):sum()`. The character embeddings start from values the
-- spec computes (a seeded torch.randn scaled by 0.1, copied in with :copy), so the generated
-- model holds them as explicit values.
-- Input: B x 7 character indices (1..6); output: B x 5.
--   graphc compile samples/corpus/char_cnn_sizes.lua --entry "CharCNN.model(6, 3, {2, 3}, {4, 5}, 7, 5)" --shape input1=Bx7 -o char_cnn_sizes.py
require 'nn'
require 'nngraph'

local CharCNN = {}

function CharCNN.tdnn(length, input_size, feature_maps, kernels)
  local input = nn.Identity()()   -- B x length x input_size
  local layer1 = {}
  for i = 1, #kernels do
    local conv = nn.TemporalConvolution(input_size, feature_maps[i], kernels[i])
    conv.name = 'conv_filter_' .. kernels[i] .. '_' .. feature_maps[i]
    table.insert(layer1, nn.Max(2)(nn.Tanh()(conv(input))))
  end
  local output = #kernels > 1 and nn.JoinTable(2)(layer1) or layer1[1]
  return nn.gModule({input}, {output})
end

function CharCNN.model(char_vocab_size, char_vec_size, feature_maps, kernels, length, out_size)
  torch.manualSeed(123)
  local char_vecs = nn.LookupTable(char_vocab_size, char_vec_size)
  char_vecs.weight:copy(torch.randn(char_vocab_size, char_vec_size) * 0.1)
  local input = nn.Identity()()
  local cnn = CharCNN.tdnn(length, char_vec_size, feature_maps, kernels)
  local input_size = torch.Tensor(feature_maps):sum()
  local out = nn.Linear(input_size, out_size)(cnn(char_vecs(input)))
  return nn.gModule({input}, {out})
end

return CharCNN
