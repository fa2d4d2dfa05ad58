-- char_tdnn.lua: a character-level CNN word encoder in the style of yoonkim/lstm-char-cnn
-- model/TDNN.lua (our own text, small sizes): characters (1-based indices; Torch feeds them
-- as a float tensor, and so may the generated Model) -> LookupTable -> one
-- TemporalConvolution per kernel width, Tanh, max over time with TemporalMaxPooling over the
-- whole convolved length, then the feature maps joined. The builder takes the options table
-- the training script defines (`opt`), here set by a --prelude file or by the caller.
-- Input: B x word_len character indices; output: B x sum(feature_maps).
--   graphc compile samples/corpus/char_tdnn.lua --entry "TDNN.encoder(10, {char_vocab_size = 12, char_vec_size = 5, feature_maps = {3, 4, 2}, kernels = {1, 2, 3}})" --shape input1=Bx10 -o tdnn.py
require 'nn'
require 'nngraph'

TDNN = {}

function TDNN.tdnn(length, input_size, feature_maps, kernels)
   -- length = length of the words (in characters), input_size = character embedding size
   local input = nn.Identity()() -- batch_size x length x input_size
   local layer1 = {}
   for i = 1, #kernels do
      local reduced_l = length - kernels[i] + 1
      local conv = nn.TemporalConvolution(input_size, feature_maps[i], kernels[i])(input)
      local pool = nn.TemporalMaxPooling(reduced_l)(nn.Tanh()(conv))
      table.insert(layer1, nn.View(feature_maps[i])(pool))
   end
   local out
   if #kernels > 1 then
      out = nn.JoinTable(2)(layer1)
   else
      out = layer1[1]
   end
   return nn.gModule({input}, {out})
end

function TDNN.encoder(word_len, opt)
   local chars = nn.Identity()()
   local embedded = nn.LookupTable(opt.char_vocab_size, opt.char_vec_size)(chars)
   local cnn = TDNN.tdnn(word_len, opt.char_vec_size, opt.feature_maps, opt.kernels)
   return nn.gModule({chars}, {cnn(embedded)})
end

return TDNN
