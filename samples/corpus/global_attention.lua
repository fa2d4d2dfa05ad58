-- global_attention.lua: a global attention layer over all encoder positions, in the style of
-- harvardnlp/seq2seq-attn's make_decoder_attn and OpenNMT's GlobalAttention (our own text,
-- small sizes), for batched B x T x H encoder states. Every position's state is projected by
-- one Linear: Torch code folds the time steps into the batch for it, which is what each
-- variant spells differently:
--   'view'    nn.View(-1, H) on B x T x H gives (B*T) x H (the -1 absorbs the batch), and
--             nn.View(-1, T, A) folds the projection back to B x T x A;
--   'dims'    nn.View(H):setNumInputDims(1): the dims before the last one are the batch;
--   'bottle'  nn.Bottle(nn.Linear(H, A)) folds, projects and unfolds in one module;
--   'reshape' as 'view', with the query and the weights made 3-D by nn.Reshape(n, 1, true)
--             (batchMode: the first dim stays the batch even when it is 1).
-- Inputs: context (B x T x H encoder states), query (B x H decoder state); outputs: the
-- attentional hidden state (B x H) and the attention weights (B x T).
--   graphc compile samples/corpus/global_attention.lua --entry "make_attention(5, 4, 3, 'view')" \
--     --shape input1=Bx5x4 --shape input2=Bx4 -o global_attention.py
--   graphc compile samples/corpus/global_attention.lua --entry "make_attention(5, 4, 3, 'dims')" \
--     --shape input1=Bx5x4 --shape input2=Bx4 -o global_attention.py
--   graphc compile samples/corpus/global_attention.lua --entry "make_attention(5, 4, 3, 'bottle')" \
--     --shape input1=Bx5x4 --shape input2=Bx4 -o global_attention.py
--   graphc compile samples/corpus/global_attention.lua --entry "make_attention(5, 4, 3, 'reshape')" \
--     --shape input1=Bx5x4 --shape input2=Bx4 -o global_attention.py
require 'nn'
require 'nngraph'

local function project_positions(context, seq_len, rnn_size, attn_size, variant)
  if variant == 'bottle' then
    return nn.Bottle(nn.Linear(rnn_size, attn_size))(context)
  end
  local rows
  if variant == 'dims' then
    rows = nn.View(rnn_size):setNumInputDims(1)(context)
  else
    rows = nn.View(-1, rnn_size)(context)
  end
  local projected = nn.Linear(rnn_size, attn_size)(rows)
  return nn.View(-1, seq_len, attn_size)(projected)
end

function make_attention(seq_len, rnn_size, attn_size, variant)
  local context = nn.Identity()()
  local query = nn.Identity()()

  local keys = nn.Tanh()(project_positions(context, seq_len, rnn_size, attn_size, variant))
  local target_t = nn.Linear(rnn_size, attn_size)(query)
  local target_3d, as_column
  if variant == 'reshape' then
    target_3d = nn.Reshape(attn_size, 1, true)(target_t)
  else
    target_3d = nn.View(-1, attn_size, 1)(target_t)
  end
  local scores = nn.View(-1, seq_len)(nn.MM()({keys, target_3d}))
  local attn = nn.SoftMax()(scores)
  if variant == 'reshape' then
    as_column = nn.Reshape(seq_len, 1, true)(attn)
  else
    as_column = nn.View(-1, seq_len, 1)(attn)
  end
  local context_combined = nn.View(-1, rnn_size)(nn.MM(true, false)({context, as_column}))
  local joined = nn.JoinTable(2)({context_combined, query})
  local h_tilde = nn.Tanh()(nn.Linear(2 * rnn_size, rnn_size, false)(joined))
  return nn.gModule({context, query}, {h_tilde, attn})
end
