-- attention_gru.lua: an attention GRU decoder step in the style of spro/torch-seq2seq-attention
-- attention-gru.lua (our own text, small sizes): a global builder function; graph inputs that
-- hold modules (nn.View(-1)() and nn.SplitTable(1)()), a CAddTable called on the single node
-- that carries the table of encoder states, and a global helper function that closes over the
-- attention node. The attention weights mix the encoder states with nn.MixtureTable, as in the
-- original; mixture = 'mv' computes the same weighted sum with JoinTable + View + MV instead.
-- Inputs (no batch dim): input (input_size), prev_h (hidden_size), encs (max_length x
-- hidden_size); outputs: next_h (hidden_size), attention weights (max_length).
--   graphc compile samples/corpus/attention_gru.lua --entry "AttentionGRU(3, 4, 5, 'mv')" \
--     --shape input1=3 --shape input2=4 --shape input3=5x4 -o attention_gru.py
require 'nn'
require 'nngraph'

function AttentionGRU(input_size, hidden_size, max_length, mixture)
  local input = nn.View(-1)()
  local prev_h = nn.View(-1)()
  local encs = nn.SplitTable(1)()

  local enc_total = nn.View(-1)(nn.CAddTable()(encs))
  local context = nn.JoinTable(1)({input, prev_h, enc_total})
  local weights = nn.SoftMax()(nn.Linear(input_size + 2 * hidden_size, max_length)(context))
  local attended
  if mixture == 'mv' then
    local enc_matrix = nn.View(max_length, hidden_size)(nn.JoinTable(1)(encs))
    attended = nn.MV(true)({enc_matrix, weights})
  else
    attended = nn.MixtureTable()({weights, encs})
  end

  function gate(i, h)
    local from_i = nn.Linear(input_size, hidden_size)(i)
    local from_h = nn.Linear(hidden_size, hidden_size)(h)
    local from_a = nn.Linear(hidden_size, hidden_size)(attended)
    return nn.CAddTable()({from_i, from_h, from_a})
  end

  local z = nn.Sigmoid()(gate(input, prev_h))
  local r = nn.Sigmoid()(gate(input, prev_h))
  local candidate = nn.Tanh()(gate(input, nn.CMulTable()({r, prev_h})))
  local one_minus_z = nn.AddConstant(1)(nn.MulConstant(-1)(z))
  local next_h = nn.CAddTable()({
    nn.CMulTable()({z, candidate}),
    nn.CMulTable()({one_minus_z, prev_h}),
  })

  return nn.gModule({input, prev_h, encs}, {next_h, weights})
end
