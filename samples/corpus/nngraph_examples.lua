-- nngraph_examples.lua: small graphs in the style of the torch/nngraph README and
-- test/test_nngraph.lua (our own text and sizes), one global builder function each:
--   mlp()              an input node that holds a module (nn.Linear(5, 4)()), a nested call chain
--   two_in_two_out()   two inputs holding Linears, one CAddTable feeding two outputs
--   container_node()   an nn.Sequential (SplitTable + ParallelTable) called as a node, :split(2)
--   dense()            a 1-D input joined with later layers (JoinTable(1) skip connections)
--   table_input()      an input fed a table {h, c} and taken apart with :split(2)
--   split_and_whole()  a node both split and used whole, plus a transformed split output
--   table_module_input()  nn.SplitTable(1)() as the input node, CAddTable on its table
--   sequential_on_table() an nn.Sequential (JoinTable(2) + Tanh) applied to a table input
--   cmul_fanout()      a CMul input node whose output is returned twice
--   annotated()        annotate{name, description, graphAttributes} on the nodes
-- e.g.
--   graphc compile samples/corpus/nngraph_examples.lua --entry "mlp()" -o mlp.py
--   graphc compile samples/corpus/nngraph_examples.lua --entry "dense()" --shape input1=1 -o dense.py
--   graphc compile samples/corpus/nngraph_examples.lua --entry "table_input()" \
--     --shape input1=Bx3 --shape "input2={Bx3,Bx3}" -o table_input.py
require 'nngraph'

function mlp()
  local x1 = nn.Linear(5, 4)()
  local out = nn.Linear(4, 1)(nn.Tanh()(nn.Linear(4, 4)(nn.Tanh()(x1))))
  return nn.gModule({x1}, {out})
end

function two_in_two_out()
  local a = nn.Linear(5, 5)()
  local b = nn.Linear(3, 3)()
  local sa = nn.Linear(5, 2)(nn.Tanh()(a))
  local sb = nn.Linear(3, 2)(nn.Tanh()(b))
  local sum = nn.CAddTable()({sa, sb})
  return nn.gModule({a, b}, {nn.Sigmoid()(sum), nn.Tanh()(sum)})
end

function container_node()
  local seq = nn.Sequential()
  seq:add(nn.SplitTable(1))
  seq:add(nn.ParallelTable():add(nn.Linear(4, 3)):add(nn.Linear(4, 2)))
  local input = nn.Identity()()
  local left, right = seq(input):split(2)
  return nn.gModule({input}, {nn.JoinTable(1)({left, right})})
end

function dense()
  local input = nn.Identity()()
  local l1 = nn.Tanh()(nn.Linear(1, 2)(input))
  local l2 = nn.Tanh()(nn.Linear(3, 4)(nn.JoinTable(1)({input, l1})))
  local l3 = nn.Tanh()(nn.Linear(6, 5)(nn.JoinTable(1)({l1, l2})))
  return nn.gModule({input}, {l3})
end

function table_input()
  local x = nn.Identity()()
  local state = nn.Identity()()
  local h, c = state:split(2)
  local out = nn.CAddTable()({
    nn.CMulTable()({x, h}),
    nn.CMulTable()({h, c}),
  })
  return nn.gModule({x, state}, {out, nn.CMulTable()({x, h, c})})
end

function split_and_whole()
  local state = nn.Identity()()
  local h, c = state:split(2)
  local again = nn.Identity()(state)
  local squashed = nn.Sigmoid()(c)
  return nn.gModule({state}, {h, again, squashed})
end

function table_module_input()
  local rows = nn.SplitTable(1)()
  return nn.gModule({rows}, {nn.CAddTable()(rows)})
end

function sequential_on_table()
  local x = nn.Identity()()
  local joined_tanh = nn.Sequential():add(nn.JoinTable(2)):add(nn.Tanh())
  local joined = nn.Sequential():add(nn.JoinTable(2)):add(nn.Identity())
  return nn.gModule({x}, {nn.CAddTable()({joined_tanh(x), joined(x)})})
end

function cmul_fanout()
  local scaled = nn.CMul(6)()
  return nn.gModule({scaled}, {nn.Identity()(scaled), nn.Identity()(scaled)})
end

function annotated()
  local input = nn.Identity()():annotate{
    name = 'Input', description = 'the input',
    graphAttributes = {color = 'red'}}
  local hidden = nn.Linear(4, 4)(input):annotate{
    name = 'Hidden', description = 'a Linear',
    graphAttributes = {color = 'blue', fontcolor = 'green', tooltip = 'hello'}}
  local out = nn.Linear(4, 2)(nn.Sigmoid()(hidden)):annotate{name = 'Out'}
  return nn.gModule({input}, {out})
end
