-- cadd.lua: the tutorial's first nngraph example, x1 + x2 through nn.CAddTable.
-- CAddTable fixes no input size, so give both shapes:
--   graphc compile samples/cadd.lua --shape input1=Bx3 --shape input2=Bx3 -o cadd.py
require 'nngraph'

x1 = nn.Identity()()
x2 = nn.Identity()()
a = nn.CAddTable()({x1, x2})
m = nn.gModule({x1, x2}, {a})
