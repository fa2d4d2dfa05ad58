-- What torch/tutorials' doall.lua and 1_data.lua define before 2_model.lua runs (our own
-- text): the command-line options and the number of classes. Used with
--   graphc compile samples/corpus/convnet_tutorial.lua --prelude samples/corpus/preludes/tutorial_opts.lua ...
opt = {model = 'convnet', size = 'small', dropout = 0.5, type = 'double'}
noutputs = 10
